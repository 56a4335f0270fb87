{# Inline in host.html: the guest CSP allows it by its SHA-256 (app.content_security_policy), so edit freely but keep it static. #}
(function () {
  // each tile exactly its frame's shape (host.css's classes are 0.05 steps): CSSOM, not a style attribute
  document.querySelectorAll(".tile[data-ratio]").forEach(function (tile) {
    var ratio = parseFloat(tile.dataset.ratio);
    if (!(ratio > 0)) return;
    tile.style.flexGrow = ratio;
    tile.style.flexBasis = (ratio * 160).toFixed(1) + "px";
    tile.style.aspectRatio = String(ratio);
  });
  var all = document.getElementById("all");
  if (!all) return;
  var boxes = document.querySelectorAll(".tile .pick input");
  all.parentNode.classList.add("on");
  all.addEventListener("change", function () {
    boxes.forEach(function (box) { box.checked = all.checked; });
  });
})();
