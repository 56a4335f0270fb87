{# Inline in results.html (while the page looks for new photos, or has more than it shows): allowed by its SHA-256 like event.js. #}
(function () {
  var root = document.getElementById("results"), url = root.dataset.poll, grid = document.getElementById("grid");
  var watch = root.dataset.watch === "yes", more = document.getElementById("more");
  var count = document.getElementById("count"), fresh = document.getElementById("fresh"), added = 0;
  function have() { return Array.prototype.map.call(grid.querySelectorAll("a.thumb"), function (a) { return a.dataset.photo; }); }
  function tile(m, alt) {
    var a = document.createElement("a"), i = document.createElement("img");
    a.className = "thumb"; a.href = m.view_url; a.dataset.photo = m.photo_id; a.dataset.download = m.download_url;
    i.src = m.face_url || m.thumbnail_url; i.alt = alt; i.loading = "lazy";
    if (m.face_url) i.className = "face";
    a.appendChild(i);
    return a;
  }
  function poll(first) {
    fetch(url + "?have=" + have().join(","), {cache: "no-store"}).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.json();
    }).then(function (d) {
      var keep = {};
      d.ids.forEach(function (id) { keep[id] = true; });
      Array.prototype.forEach.call(grid.querySelectorAll("a.thumb"), function (a) { a.hidden = !keep[a.dataset.photo]; });
      if (first) {  // the rest of the results, after those the page itself holds
        var n0 = grid.querySelectorAll("a.thumb").length;
        d["new"].forEach(function (m, k) { grid.appendChild(tile(m, "Photo " + (n0 + k + 1) + " of you")); });
        if (more) more.hidden = true;
      } else if (d["new"].length) {
        d["new"].forEach(function (m) { grid.insertBefore(tile(m, "New photo of you"), grid.firstChild); });
        added += d["new"].length;
        fresh.textContent = added + " new photo" + (added === 1 ? "" : "s") + " of you";
        fresh.hidden = false;
        var none = document.getElementById("none");
        if (none) none.hidden = true;
      }
      var n = d.ids.length;
      count.textContent = n ? n + " photo" + (n === 1 ? "" : "s") + " of you." : count.dataset.zero;
      var b = document.getElementById("backlog");
      if (b && !d.backlog) b.hidden = true;
      if (watch && d.watching) setTimeout(function () { poll(false); }, 3000);
    }).catch(function () { if (watch) setTimeout(function () { poll(false); }, 10000); });
  }
  if (more) poll(true);
  else setTimeout(function () { poll(false); }, 3000);
})();
