// Forms that ask before they submit: <form data-confirm="question"> (no inline onsubmit: the CSP allows no inline script).
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
}, true);
