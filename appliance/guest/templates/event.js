{# Inline in event.html: the guest CSP allows it by its SHA-256 (app.content_security_policy), so edit freely but keep it static. #}
(function () {
  var input = document.getElementById("selfie"), consent = document.getElementById("consent");
  var need = document.getElementById("need"), pick = document.getElementById("pick");
  function agreed() {  // no consent box: the box is set not to ask (guest.consent_required)
    if (!consent) return true;
    need.hidden = consent.checked;
    if (!consent.checked) consent.focus();
    return consent.checked;
  }
  pick.addEventListener("click", function (e) { if (!agreed()) e.preventDefault(); });
  if (consent) consent.addEventListener("change", function () { if (consent.checked) need.hidden = true; });
  input.addEventListener("change", function () {
    if (!input.files.length || !agreed()) return;
    document.getElementById("busy").hidden = false;
    pick.classList.add("working");
    document.getElementById("search").submit();
  });
})();
