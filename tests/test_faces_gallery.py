"""The in-memory gallery a guest search runs against: exact, one photo once, grows correctly."""

from __future__ import annotations

import numpy as np

from appliance.faces.service import EventGallery
from appliance.store.faces import EventVectors


def test_search_is_exact_over_many_top_ups() -> None:
    rng = np.random.default_rng(7)
    gallery = EventGallery("evnt2345")
    vectors, ids = [], []
    for batch in range(60):  # grows past its initial capacity several times
        n = int(rng.integers(0, 30))
        v = rng.normal(0, 0.1, size=(n, 128)).astype(np.float32)
        i = np.arange(n, dtype=np.int64) // 3 + batch * 100  # up to three faces per photo
        gallery.add(EventVectors(i, v, batch + 1))
        vectors.append(v)
        ids.append(i)
    every, owners = np.concatenate(vectors), np.concatenate(ids)
    assert gallery.faces == len(every) and gallery.last_face_id == 60

    query = every[123] + 0.0005
    found = gallery.search(query, threshold=1.2)
    distances = np.linalg.norm(every - query, axis=1)
    expected: dict[int, float] = {}
    for index in np.argsort(distances):
        if distances[index] < 1.2:
            expected.setdefault(int(owners[index]), float(distances[index]))
    assert [p for p, _ in found] == sorted(expected, key=expected.__getitem__)
    assert found[0][0] == int(owners[123]) and found[0][1] < 0.01
    assert len({p for p, _ in found}) == len(found), "a photo counts once"


def test_empty_gallery_finds_nothing() -> None:
    assert EventGallery("evnt2345").search(np.zeros(128, np.float32), 0.5) == []
