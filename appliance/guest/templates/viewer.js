{# Inline in _viewer.html: the guest CSP allows it by its SHA-256 (app.content_security_policy), so edit freely but keep it static. #}
(function () {
  var box = document.getElementById("viewer"), img = document.getElementById("v-img");
  var dl = document.getElementById("v-dl"), said = document.getElementById("v-said");
  var share = document.getElementById("v-share"), at = -1, opener = null, x0 = null;
  function thumbs() { return Array.prototype.filter.call(document.querySelectorAll("#grid a.thumb"), function (a) { return !a.hidden; }); }
  function show(i) {
    var all = thumbs();
    if (!all.length) return;
    at = (i + all.length) % all.length;
    var a = all[at];
    img.src = a.href;
    img.alt = a.querySelector("img").alt + " (" + (at + 1) + " of " + all.length + ")";
    dl.href = a.dataset.download;
    said.textContent = "";
  }
  function open(a) {
    opener = a;
    show(thumbs().indexOf(a));
    if (!box.open) box.showModal();
    document.getElementById("v-close").focus();
  }
  document.getElementById("grid").addEventListener("click", function (e) {
    var a = e.target.closest("a.thumb");
    if (!a || !box.showModal) return;
    e.preventDefault();
    open(a);
  });
  document.getElementById("v-prev").addEventListener("click", function () { show(at - 1); });
  document.getElementById("v-next").addEventListener("click", function () { show(at + 1); });
  document.getElementById("v-close").addEventListener("click", function () { box.close(); });
  box.addEventListener("close", function () { img.removeAttribute("src"); if (opener) opener.focus(); });
  box.addEventListener("keydown", function (e) {
    if (e.key === "ArrowLeft") show(at - 1);
    else if (e.key === "ArrowRight") show(at + 1);
  });
  box.addEventListener("touchstart", function (e) { x0 = e.touches[0].clientX; }, {passive: true});
  box.addEventListener("touchend", function (e) {
    if (x0 === null) return;
    var dx = e.changedTouches[0].clientX - x0;
    x0 = null;
    if (Math.abs(dx) > 50) show(dx < 0 ? at + 1 : at - 1);
  });
  share.addEventListener("click", function () {
    var url = new URL(img.src, location.href).href;
    if (navigator.share && navigator.canShare) {
      fetch(img.src).then(function (r) { return r.blob(); }).then(function (b) {
        var file = new File([b], "photo.jpg", {type: "image/jpeg"});
        if (navigator.canShare({files: [file]})) return navigator.share({files: [file]});
        return navigator.share({url: url});
      }).catch(function () {});
    } else if (navigator.clipboard) {
      navigator.clipboard.writeText(url).then(function () { said.textContent = "Link copied."; },
        function () { said.textContent = url; });
    } else {
      said.textContent = url;
    }
  });
})();
