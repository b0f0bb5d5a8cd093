"""Steps the browser tests share."""
from tests import factories


def sign_in(page, base, email, password=factories.PASSWORD):
    page.goto(f"{base}/auth/sign-in")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Sign in')")
    page.wait_for_load_state()


def signed_in_page(browser, base, email):
    """A page of a browser context of its own (its own cookies), signed in as `email`."""
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, base, email)
    return context, page


def sign_out(page):
    page.click("button:has-text('Sign out')")
    page.wait_for_load_state()


def mail_text(mail) -> str:
    """The text/plain part of a mail read from the maildir."""
    for part in mail.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    return ""
