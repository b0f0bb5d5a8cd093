"""Steps the browser tests share."""
from tests import factories


def sign_in(page, base, email, password=factories.PASSWORD):
    page.goto(f"{base}/auth/sign-in")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Sign in')")
    page.wait_for_load_state()


def sign_out(page):
    page.click("button:has-text('Sign out')")
    page.wait_for_load_state()
