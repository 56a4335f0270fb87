{# Inline in wall.html: the guest CSP allows it by its SHA-256 (app.content_security_policy), so edit freely but keep it static. #}
(function () {
  var ADVANCE_MS = 6000, POLL_MS = 10000;
  var wall = document.getElementById("wall");
  var slide = document.getElementById("slide");
  var empty = document.getElementById("empty");
  var photos = [];  // newest first, as wall.json lists them
  var fresh = [];  // ids that arrived since the last poll: shown next, oldest of them first
  var current = null, index = -1;

  function byId(id) {
    for (var i = 0; i < photos.length; i++) if (photos[i].photo_id === id) return i;
    return -1;
  }

  function show(photo) {
    var next = new Image();
    next.onload = function () {
      slide.classList.add("out");
      setTimeout(function () {
        slide.src = photo.view_url;
        slide.hidden = false;
        empty.hidden = true;
        slide.classList.remove("out");
      }, 600);
    };
    next.src = photo.view_url;
    current = photo.photo_id;
  }

  function advance() {
    if (!photos.length) {
      slide.hidden = true;
      empty.hidden = false;
      current = null;
      return;
    }
    var id = fresh.length ? fresh.pop() : null;
    index = id !== null && byId(id) >= 0 ? byId(id) : (index + 1) % photos.length;
    show(photos[index]);
  }

  function poll() {
    fetch(wall.dataset.feed, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        var known = {};
        photos.forEach(function (p) { known[p.photo_id] = true; });
        var first = !photos.length;
        photos = data.photos;
        if (!first) {
          photos.forEach(function (p) { if (!known[p.photo_id]) fresh.push(p.photo_id); });
        }
        if (current === null || byId(current) < 0) advance();  // the host hid it: gone at once
        else index = byId(current);
      })
      .catch(function () {});  // the box is busy or restarting: try again next time
  }

  poll();
  setInterval(advance, ADVANCE_MS);
  setInterval(poll, POLL_MS);
})();
