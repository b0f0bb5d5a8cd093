// A page that answers a refused form opens at the list of its errors (the form's action ends
// in its #id) and marks that list `autofocus`. Browsers skip autofocus on a page opened at a
// fragment, and not all of them focus the fragment's target, so focus goes to the list here,
// for keyboard and screen-reader users. The page works without this file: it opens at the
// form with the errors beside it, announced (role=alert).
document.addEventListener("DOMContentLoaded", function () {
  var errors = document.querySelector("[autofocus][tabindex='-1']");
  if (errors && document.activeElement !== errors) {
    errors.focus();
  }
});
