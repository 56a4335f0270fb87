"""The fake Rekognition behaves like the real service, as seen through real boto3.

Everything goes over HTTP to ``tests.fakes.rekognition.FakeRekognition``; raw ``urllib`` requests
are used only where boto3 would refuse to send the request itself.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError
from PIL import Image

from tests.fakes.rekognition import (
    MAX_IMAGE_BYTES,
    FakeRekognition,
    image_info,
    make_face_jpeg,
    make_face_png,
    min_face_side,
    with_faces,
)

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NO_RETRIES = Config(retries={"total_max_attempts": 1})  # NB: {"max_attempts": 1} still retries once
GROUP = [  # three people, largest first
    {"person": "alice", "box": [100, 120, 300, 360]},
    {"person": "bob", "box": [800, 200, 200, 240]},
    {"person": "carol", "box": [1400, 300, 120, 150]},
]


def _client(fake: FakeRekognition, config: Config | None = None) -> Any:
    return boto3.client(
        "rekognition",
        endpoint_url=fake.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )


@pytest.fixture
def fake() -> Iterator[FakeRekognition]:
    with FakeRekognition() as running:
        yield running
    assert running.crashes == []


@pytest.fixture
def client(fake: FakeRekognition) -> Iterator[Any]:
    made = _client(fake)
    yield made
    made.close()


@pytest.fixture
def event(client: Any) -> str:
    client.create_collection(CollectionId="event-42")
    return "event-42"


def _raw(fake: FakeRekognition, target: str, body: dict[str, Any] | bytes) -> tuple[int, dict[str, Any]]:
    """POST straight to the fake, bypassing boto3's client-side checks."""
    request = urllib.request.Request(
        fake.url + "/",
        data=body if isinstance(body, bytes) else json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            status, kind, data = response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        with error:
            status, kind, data = error.code, error.headers["Content-Type"], error.read()
    assert kind == "application/x-amz-json-1.1"
    return status, json.loads(data)


def _face_ids(response: dict[str, Any]) -> list[str]:
    return [record["Face"]["FaceId"] for record in response["FaceRecords"]]


def _people(response: dict[str, Any], faces: list[dict[str, Any]], width: int, height: int) -> dict[str, str]:
    """FaceId -> person, matching each record's box back to the declared faces."""
    by_corner = {(f["box"][0] / width, f["box"][1] / height): f["person"] for f in faces}
    out = {}
    for record in response["FaceRecords"]:
        box = record["Face"]["BoundingBox"]
        [person] = [p for (x, y), p in by_corner.items() if abs(box["Left"] - x) + abs(box["Top"] - y) < 1e-9]
        out[record["Face"]["FaceId"]] = person
    return out


def _count(client: Any, collection: str) -> int:
    return int(client.describe_collection(CollectionId=collection)["FaceCount"])


# --- collections ---------------------------------------------------------------------------------


def test_collection_round_trip(fake: FakeRekognition, client: Any) -> None:
    created = client.create_collection(CollectionId="gala_2026.hall-A")
    assert created["StatusCode"] == 200
    assert created["CollectionArn"].endswith(":collection/gala_2026.hall-A")
    assert created["FaceModelVersion"] == "7.0"

    described = client.describe_collection(CollectionId="gala_2026.hall-A")
    assert described["FaceCount"] == 0
    assert (
        described["CollectionARN"] == "arn:aws:rekognition:us-east-1:123456789012:collection/gala_2026.hall-A"
    )
    assert described["CreationTimestamp"].timestamp() == pytest.approx(time.time(), abs=60)

    client.create_collection(CollectionId="another")
    listed = client.list_collections()
    assert listed["CollectionIds"] == ["another", "gala_2026.hall-A"]
    assert listed["FaceModelVersions"] == ["7.0", "7.0"]

    assert client.delete_collection(CollectionId="gala_2026.hall-A")["StatusCode"] == 200
    assert client.list_collections()["CollectionIds"] == ["another"]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_collection(CollectionId="gala_2026.hall-A")
    assert fake.invalid_requests == []


def test_creating_a_collection_twice_raises_the_modeled_exception(client: Any, event: str) -> None:
    with pytest.raises(client.exceptions.ResourceAlreadyExistsException) as caught:
        client.create_collection(CollectionId=event)
    assert isinstance(caught.value, ClientError)
    assert caught.value.response["Error"] == {
        "Code": "ResourceAlreadyExistsException",
        "Message": f"The collection id: {event} already exists.",
    }
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_missing_collection_is_resource_not_found(fake: FakeRekognition, client: Any) -> None:
    image = make_face_jpeg(640, 480, GROUP[:1])
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.index_faces(CollectionId="nope", Image={"Bytes": image})
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.search_faces_by_image(CollectionId="nope", Image={"Bytes": image})
    for operation in (client.delete_collection, client.describe_collection, client.list_faces):
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            operation(CollectionId="nope")
    assert fake.billable_calls == 0
    assert fake.invalid_requests == []  # a wrong id is not a malformed request


# --- IndexFaces ----------------------------------------------------------------------------------


def test_index_faces_returns_every_declared_face_as_ratios(
    fake: FakeRekognition, client: Any, event: str
) -> None:
    image = make_face_jpeg(1920, 1080, GROUP)
    response = client.index_faces(CollectionId=event, Image={"Bytes": image}, ExternalImageId="cam1_0001.jpg")

    records = response["FaceRecords"]
    assert len(records) == 3
    assert response["UnindexedFaces"] == []
    assert response["FaceModelVersion"] == "7.0"
    assert len({r["Face"]["ImageId"] for r in records}) == 1
    for record, declared in zip(records, GROUP, strict=True):  # largest first, like AWS
        face, box = record["Face"], record["Face"]["BoundingBox"]
        assert UUID.fullmatch(face["FaceId"])
        assert face["ExternalImageId"] == "cam1_0001.jpg"
        assert 0 < face["Confidence"] <= 100
        assert all(0 <= box[k] <= 1 for k in ("Width", "Height", "Left", "Top"))
        x, y, w, h = declared["box"]
        assert box == pytest.approx(
            {"Left": x / 1920, "Top": y / 1080, "Width": w / 1920, "Height": h / 1080}
        )
        assert record["FaceDetail"]["BoundingBox"] == box
    assert _count(client, event) == 3
    listed = client.list_faces(CollectionId=event)["Faces"]
    assert sorted(f["FaceId"] for f in listed) == sorted(_face_ids(response))
    assert fake.billable_calls == 1


def test_reindexing_the_same_image_is_idempotent_but_billed(
    fake: FakeRekognition, client: Any, event: str
) -> None:
    image = make_face_jpeg(1920, 1080, GROUP)
    first = client.index_faces(CollectionId=event, Image={"Bytes": image}, ExternalImageId="img-1")
    again = client.index_faces(CollectionId=event, Image={"Bytes": image}, ExternalImageId="img-1")

    assert _face_ids(again) == _face_ids(first)
    assert again["FaceRecords"][0]["Face"]["ImageId"] == first["FaceRecords"][0]["Face"]["ImageId"]
    assert _count(client, event) == 3
    assert fake.billable_calls == 2
    assert fake.count("IndexFaces") == 2


def test_another_external_id_or_other_bytes_make_new_faces(client: Any, event: str) -> None:
    image = make_face_jpeg(1920, 1080, GROUP)
    first = client.index_faces(CollectionId=event, Image={"Bytes": image}, ExternalImageId="img-1")
    renamed = client.index_faces(CollectionId=event, Image={"Bytes": image}, ExternalImageId="img-2")
    other = make_face_jpeg(1920, 1080, GROUP, seed=1)
    assert other != image
    reshot = client.index_faces(CollectionId=event, Image={"Bytes": other}, ExternalImageId="img-1")

    ids = [set(_face_ids(r)) for r in (first, renamed, reshot)]
    assert all(len(group) == 3 for group in ids)
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert _count(client, event) == 9


def test_max_faces_keeps_the_largest_and_reports_the_rest(client: Any, event: str) -> None:
    image = make_face_jpeg(1920, 1080, GROUP)
    response = client.index_faces(CollectionId=event, Image={"Bytes": image}, MaxFaces=2)

    assert len(response["FaceRecords"]) == 2
    widths = [r["Face"]["BoundingBox"]["Width"] for r in response["FaceRecords"]]
    assert widths == pytest.approx([300 / 1920, 200 / 1920])
    [unindexed] = response["UnindexedFaces"]
    assert unindexed["Reasons"] == ["EXCEEDS_MAX_FACES"]
    assert unindexed["FaceDetail"]["BoundingBox"]["Width"] == pytest.approx(120 / 1920)  # carol, the smallest
    assert _count(client, event) == 2
    assert "ExternalImageId" not in response["FaceRecords"][0]["Face"]


def test_quality_filter_drops_tiny_faces_unless_none(client: Any) -> None:
    faces = [{"person": "alice", "box": [100, 100, 200, 200]}, {"person": "kid", "box": [900, 500, 30, 30]}]
    image = make_face_jpeg(1920, 1080, faces)
    assert min_face_side(1920, 1080) == 40
    assert min_face_side(3840, 2160) == 80  # the documented floor scales with larger images
    client.create_collection(CollectionId="auto")
    client.create_collection(CollectionId="none")

    default = client.index_faces(CollectionId="auto", Image={"Bytes": image})  # IndexFaces defaults to AUTO
    assert len(default["FaceRecords"]) == 1
    [small] = default["UnindexedFaces"]
    assert small["Reasons"] == ["SMALL_BOUNDING_BOX"]
    assert small["FaceDetail"]["BoundingBox"]["Width"] == pytest.approx(30 / 1920)
    high = client.index_faces(
        CollectionId="auto", Image={"Bytes": image}, QualityFilter="HIGH", ExternalImageId="x"
    )
    assert [u["Reasons"] for u in high["UnindexedFaces"]] == [["SMALL_BOUNDING_BOX"]]

    kept = client.index_faces(CollectionId="none", Image={"Bytes": image}, QualityFilter="NONE")
    assert len(kept["FaceRecords"]) == 2
    assert kept["UnindexedFaces"] == []

    big = make_face_jpeg(3840, 2160, [{"person": "alice", "box": [10, 10, 60, 60]}])
    assert client.index_faces(CollectionId="auto", Image={"Bytes": big})["FaceRecords"] == []


# --- SearchFacesByImage --------------------------------------------------------------------------


def test_selfie_search_finds_exactly_the_largest_faces_person(
    fake: FakeRekognition, client: Any, event: str
) -> None:
    photos = {
        "p1": [
            {"person": "alice", "box": [100, 100, 300, 300]},
            {"person": "bob", "box": [900, 100, 300, 300]},
        ],
        "p2": [
            {"person": "carol", "box": [100, 100, 300, 300]},
            {"person": "alice", "box": [900, 100, 120, 120]},
        ],
        "p3": [
            {"person": "bob", "box": [100, 100, 300, 300]},
            {"person": "dave", "box": [900, 100, 300, 300]},
        ],
        "p4": [{"person": "alice", "box": [500, 400, 200, 200]}],
    }
    people: dict[str, str] = {}
    for name, faces in photos.items():
        image = make_face_jpeg(1920, 1080, faces)
        people |= _people(
            client.index_faces(CollectionId=event, Image={"Bytes": image}, ExternalImageId=name),
            faces,
            1920,
            1080,
        )
    alice = {face_id for face_id, person in people.items() if person == "alice"}
    assert len(people) == 7 and len(alice) == 3

    # alice close to the camera, bob photobombing behind her
    selfie = make_face_jpeg(
        720,
        1280,
        [{"person": "bob", "box": [500, 100, 100, 100]}, {"person": "alice", "box": [160, 300, 400, 480]}],
    )
    found = client.search_faces_by_image(CollectionId=event, Image={"Bytes": selfie})

    matches = found["FaceMatches"]
    assert {m["Face"]["FaceId"] for m in matches} == alice
    assert {m["Face"]["ExternalImageId"] for m in matches} == {"p1", "p2", "p4"}
    similarities = [m["Similarity"] for m in matches]
    assert similarities == sorted(similarities, reverse=True)
    assert all(99 <= s <= 100 for s in similarities)
    assert found["SearchedFaceBoundingBox"] == pytest.approx(
        {"Left": 160 / 720, "Top": 300 / 1280, "Width": 400 / 720, "Height": 480 / 1280}
    )
    assert found["FaceModelVersion"] == "7.0"

    # the threshold is respected (default 80 would keep all three)
    cut = similarities[0] - 1e-9 if len(set(similarities)) == 1 else (similarities[0] + similarities[-1]) / 2
    above = client.search_faces_by_image(CollectionId=event, Image={"Bytes": selfie}, FaceMatchThreshold=cut)
    assert [m["Similarity"] for m in above["FaceMatches"]] == [s for s in similarities if s >= cut]
    assert (
        client.search_faces_by_image(CollectionId=event, Image={"Bytes": selfie}, FaceMatchThreshold=100)[
            "FaceMatches"
        ]
        == []
    )
    top = client.search_faces_by_image(CollectionId=event, Image={"Bytes": selfie}, MaxFaces=1)
    assert [m["Face"]["FaceId"] for m in top["FaceMatches"]] == [matches[0]["Face"]["FaceId"]]
    assert fake.billable_calls == 4 + 4


def test_selfie_without_a_face_is_invalid_parameter(fake: FakeRekognition, client: Any, event: str) -> None:
    with pytest.raises(client.exceptions.InvalidParameterException) as caught:
        client.search_faces_by_image(CollectionId=event, Image={"Bytes": make_face_jpeg(640, 480, [])})
    assert (
        caught.value.response["Error"]["Message"] == "There are no faces in the image. Should be at least 1."
    )
    assert fake.invalid_requests == []  # a faceless selfie is the guest's doing, not a bug
    assert fake.billable_calls == 1  # detection ran (assumed billed; see the fake's docstring)


# --- images --------------------------------------------------------------------------------------


def test_image_over_5_mib_is_too_large(fake: FakeRekognition, client: Any, event: str) -> None:
    image = make_face_jpeg(1920, 1080, GROUP) + bytes(6 * 1024 * 1024)  # trailing junk still reads as JPEG
    assert len(image) > MAX_IMAGE_BYTES
    with pytest.raises(client.exceptions.ImageTooLargeException) as caught:
        client.index_faces(CollectionId=event, Image={"Bytes": image})
    assert caught.value.response["Error"]["Message"] == "Image size is too large."
    [invalid] = fake.invalid_requests
    assert (invalid.operation, invalid.code) == ("IndexFaces", "ImageTooLargeException")
    assert invalid.params["Image"]["BytesSha256"] == hashlib.sha256(image).hexdigest()
    assert fake.billable_calls == 0
    assert _count(client, event) == 0


def test_png_works(client: Any, event: str) -> None:
    png = make_face_png(800, 600, [{"person": "erin", "box": [200, 150, 240, 280]}])
    assert png.startswith(b"\x89PNG") and image_info(png)[:3] == ("png", 800, 600)
    indexed = client.index_faces(CollectionId=event, Image={"Bytes": png}, ExternalImageId="erin.png")
    assert len(indexed["FaceRecords"]) == 1

    selfie = make_face_jpeg(480, 640, [{"person": "erin", "box": [100, 100, 250, 300]}])
    found = client.search_faces_by_image(CollectionId=event, Image={"Bytes": selfie})
    assert [m["Face"]["FaceId"] for m in found["FaceMatches"]] == _face_ids(indexed)


def test_not_an_image_is_invalid_format(fake: FakeRekognition, client: Any, event: str) -> None:
    with pytest.raises(client.exceptions.InvalidImageFormatException) as caught:
        client.index_faces(CollectionId=event, Image={"Bytes": b"GUEST LIST\nalice\nbob\n"})
    assert caught.value.response["Error"]["Message"] == "Request has invalid image format."
    assert [i.code for i in fake.invalid_requests] == ["InvalidImageFormatException"]


def test_image_under_80_px_is_invalid_parameter(fake: FakeRekognition, client: Any, event: str) -> None:
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.index_faces(CollectionId=event, Image={"Bytes": make_face_jpeg(79, 400, [])})
    assert (
        client.index_faces(CollectionId=event, Image={"Bytes": make_face_jpeg(80, 80, [])})["FaceRecords"]
        == []
    )
    assert [i.code for i in fake.invalid_requests] == ["InvalidParameterException"]


def test_with_faces_keeps_a_valid_jpeg(client: Any, event: str) -> None:
    plain = make_face_jpeg(320, 240, [])
    tagged = with_faces(plain, [{"person": "zoe", "box": [10, 20, 100, 120]}])
    assert tagged[:4] == b"\xff\xd8\xff\xfe"
    assert image_info(tagged)[:3] == ("jpeg", 320, 240)
    with Image.open(io.BytesIO(tagged)) as decoded:
        decoded.load()
        assert decoded.size == (320, 240)
    response = client.index_faces(CollectionId=event, Image={"Bytes": tagged}, QualityFilter="NONE")
    assert len(response["FaceRecords"]) == 1


def _resized(jpeg: bytes, long_edge: int) -> bytes:
    """``jpeg`` made smaller as the box's proxies are: the comment (declaration) carried over."""
    with Image.open(io.BytesIO(jpeg)) as image:
        comment = image.info["comment"]
        small = image.convert("RGB")
    small.thumbnail((long_edge, long_edge))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=80, comment=comment)
    return out.getvalue()


def test_declared_boxes_are_scaled_to_the_image_sent(client: Any, event: str) -> None:
    """The declaration names the size its boxes refer to; a smaller copy of the picture carries
    the same comment, and its faces are where (and as small as) they are in that copy."""
    frame = make_face_jpeg(3000, 2000, [{"person": "ann", "box": [300, 400, 120, 150]}])
    assert image_info(frame)[3][0].startswith('shutterbox-faces:{"size": [3000, 2000]')
    # 120x150 px at 3000 (floor 74 px there), 82x102 at 2048 (floor 51), 40x50 at 1000 (floor 40)
    for long_edge in (3000, 2048, 1000):
        copy = _resized(frame, long_edge)
        response = client.index_faces(
            CollectionId=event, Image={"Bytes": copy}, ExternalImageId=str(long_edge)
        )
        [record] = response["FaceRecords"]
        box = record["Face"]["BoundingBox"]  # ratios: the same in every copy
        assert box["Left"] == pytest.approx(0.1, abs=2e-3)
        assert box["Width"] == pytest.approx(0.04, abs=2e-3)
    tiny = _resized(frame, 900)  # the face is 36 px wide there: under Rekognition's 40 px
    response = client.index_faces(CollectionId=event, Image={"Bytes": tiny}, ExternalImageId="tiny")
    assert response["FaceRecords"] == []
    assert [u["Reasons"] for u in response["UnindexedFaces"]] == [["SMALL_BOUNDING_BOX"]]


def test_a_bare_list_declaration_is_in_the_pixels_of_the_image_sent(client: Any, event: str) -> None:
    plain = make_face_jpeg(1000, 800, [])
    payload = b'shutterbox-faces:[{"person": "ben", "box": [10, 20, 100, 120]}]'
    legacy = plain[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + plain[2:]
    response = client.index_faces(CollectionId=event, Image={"Bytes": legacy}, QualityFilter="NONE")
    [record] = response["FaceRecords"]
    assert record["Face"]["BoundingBox"]["Width"] == pytest.approx(0.1)


# --- request validation --------------------------------------------------------------------------


def test_bad_collection_id_is_rejected_by_the_server(fake: FakeRekognition, client: Any) -> None:
    status, body = _raw(fake, "RekognitionService.CreateCollection", {"CollectionId": "bad id!"})
    assert status == 400
    assert body["__type"] == "ValidationException"
    assert "Value 'bad id!' at 'collectionId' failed to satisfy constraint" in body["Message"]
    assert "regular expression pattern: [a-zA-Z0-9_.\\-]+" in body["Message"]
    [invalid] = fake.invalid_requests
    assert (invalid.operation, invalid.params) == ("CreateCollection", {"CollectionId": "bad id!"})

    # boto3 checks only lengths/types client-side, so the pattern is the server's job
    with pytest.raises(ClientError) as caught:
        client.create_collection(CollectionId="bad id!")
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ParamValidationError):  # an empty id never leaves the client
        client.create_collection(CollectionId="")
    assert fake.count("CreateCollection") == 2
    assert len(fake.invalid_requests) == 2
    assert client.list_collections()["CollectionIds"] == []


def test_external_image_id_over_255_chars_is_rejected(fake: FakeRekognition, client: Any, event: str) -> None:
    image = make_face_jpeg(640, 480, GROUP[:1])
    body = {"CollectionId": event, "Image": {"Bytes": base64.b64encode(image).decode()}}
    status, answer = _raw(fake, "RekognitionService.IndexFaces", {**body, "ExternalImageId": "x" * 256})
    assert status == 400
    assert answer["__type"] == "ValidationException"
    assert (
        "at 'externalImageId' failed to satisfy constraint: Member must have length less than or equal to 255"
        in answer["Message"]
    )
    assert [(i.operation, i.code) for i in fake.invalid_requests] == [("IndexFaces", "ValidationException")]
    assert fake.billable_calls == 0

    status, answer = _raw(fake, "RekognitionService.IndexFaces", {**body, "ExternalImageId": "x" * 255})
    assert status == 200 and len(answer["FaceRecords"]) == 1
    with pytest.raises(ClientError, match="regular expression pattern"):
        client.index_faces(CollectionId=event, Image={"Bytes": image}, ExternalImageId="photos/img 1.jpg")


def test_model_rules_boto3_skips_are_enforced(fake: FakeRekognition, client: Any, event: str) -> None:
    image = make_face_jpeg(640, 480, GROUP[:1])
    cases = [
        ({"QualityFilter": "BEST"}, "Member must satisfy enum value set: [NONE, AUTO, LOW, MEDIUM, HIGH]"),
        ({"MaxFaces": 5000}, "Member must have value less than or equal to 4096"),
        ({"FaceMatchThreshold": 100.5}, "Member must have value less than or equal to 100"),
    ]
    for extra, message in cases:
        with pytest.raises(ClientError) as caught:
            client.search_faces_by_image(CollectionId=event, Image={"Bytes": image}, **extra)
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        assert message in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError, match="regular expression pattern"):
        client.delete_faces(CollectionId=event, FaceIds=["not-a-face-id"])
    status, answer = _raw(fake, "RekognitionService.ListFaces", {"CollectionId": event, "Bogus": 1})
    assert (status, answer["__type"]) == (400, "ValidationException")
    assert "Unknown parameter" in answer["Message"]
    assert len(fake.invalid_requests) == 5
    assert fake.billable_calls == 0


def test_unknown_or_unfaked_operations_and_garbage_bodies(fake: FakeRekognition) -> None:
    assert _raw(fake, "RekognitionService.Frobnicate", {})[1]["__type"] == "UnknownOperationException"
    status, body = _raw(fake, "RekognitionService.DetectLabels", {})
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    assert "not faked" in body["Message"]
    assert _raw(fake, "SomeOtherService.ListCollections", {})[1]["__type"] == "UnknownOperationException"
    assert (
        _raw(fake, "RekognitionService.ListCollections", b"{not json")[1]["__type"]
        == "SerializationException"
    )
    assert len(fake.invalid_requests) == 4
    assert _raw(fake, "RekognitionService.ListCollections", {}) == (
        200,
        {"CollectionIds": [], "FaceModelVersions": []},
    )


# --- faults, observability, lifecycle ------------------------------------------------------------


def test_throttling_surfaces_without_retries_and_heals_with_them(fake: FakeRekognition, event: str) -> None:
    image = make_face_jpeg(640, 480, GROUP[:1])
    impatient = _client(fake, NO_RETRIES)
    patient = _client(fake, Config(retries={"mode": "standard", "max_attempts": 3}))
    try:
        fake.fail_next("IndexFaces", "ThrottlingException")
        with pytest.raises(ClientError) as caught:
            impatient.index_faces(CollectionId=event, Image={"Bytes": image})
        assert caught.value.response["Error"]["Code"] == "ThrottlingException"
        assert isinstance(caught.value, impatient.exceptions.ThrottlingException)
        assert fake.count("IndexFaces") == 1

        fake.fail_next("IndexFaces", "ThrottlingException", times=2)
        response = patient.index_faces(CollectionId=event, Image={"Bytes": image})
        assert response["ResponseMetadata"]["RetryAttempts"] == 2
        assert len(response["FaceRecords"]) == 1
        assert fake.count("IndexFaces") == 4
        assert fake.billable_calls == 1  # throttled calls never reached processing
    finally:
        impatient.close()
        patient.close()


def test_other_injected_faults(fake: FakeRekognition, event: str) -> None:
    client = _client(fake, NO_RETRIES)
    try:
        fake.fail_next("ListFaces", "ProvisionedThroughputExceededException")
        with pytest.raises(client.exceptions.ProvisionedThroughputExceededException):
            client.list_faces(CollectionId=event)
        fake.fail_next("ListFaces", "InternalServerError")
        with pytest.raises(client.exceptions.InternalServerError) as caught:
            client.list_faces(CollectionId=event)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        fake.fail_next("ListFaces", "AccessDeniedException")
        with pytest.raises(client.exceptions.AccessDeniedException):
            client.list_faces(CollectionId=event)
        assert client.list_faces(CollectionId=event)["Faces"] == []
        with pytest.raises(ValueError, match="no operation"):
            fake.fail_next("IndexFace", "ThrottlingException")
    finally:
        client.close()


def test_delay_holds_the_answer(fake: FakeRekognition, client: Any) -> None:
    fake.delay("ListCollections", 0.3)
    started = time.monotonic()
    client.list_collections()
    assert time.monotonic() - started >= 0.3
    fake.delay("ListCollections", 0)
    started = time.monotonic()
    client.list_collections()
    assert time.monotonic() - started < 0.3


def test_calls_record_image_digests_not_bytes(fake: FakeRekognition, client: Any, event: str) -> None:
    image = make_face_jpeg(640, 480, GROUP[:1])
    client.index_faces(CollectionId=event, Image={"Bytes": image}, ExternalImageId="a", MaxFaces=5)
    operation, params = fake.calls[-1]
    assert operation == "IndexFaces"
    assert params == {
        "CollectionId": event,
        "Image": {"BytesSha256": hashlib.sha256(image).hexdigest(), "BytesSize": len(image)},
        "ExternalImageId": "a",
        "MaxFaces": 5,
    }
    assert [c.operation for c in fake.calls] == ["CreateCollection", "IndexFaces"]
    [(collection, faces)] = fake.collections.items()
    assert collection == event and len(faces) == 1 and faces[0]["ExternalImageId"] == "a"


def test_delete_faces_and_paginated_listing(client: Any, event: str) -> None:
    crowd = [{"person": f"guest{i}", "box": [i * 150, 100, 120, 120]} for i in range(7)]
    ids = _face_ids(
        client.index_faces(CollectionId=event, Image={"Bytes": make_face_jpeg(1920, 1080, crowd)})
    )
    pages = client.get_paginator("list_faces").paginate(CollectionId=event, MaxResults=3)
    listed = [face["FaceId"] for page in pages for face in page["Faces"]]
    assert sorted(listed) == sorted(ids) and len(listed) == 7

    ghost = "00000000-0000-4000-8000-000000000000"
    deleted = client.delete_faces(CollectionId=event, FaceIds=[ids[0], ghost])
    assert deleted["DeletedFaces"] == [ids[0]]
    assert deleted["UnsuccessfulFaceDeletions"] == [{"FaceId": ghost, "Reasons": ["FACE_NOT_FOUND"]}]
    assert _count(client, event) == 6
    assert [f["FaceId"] for f in client.list_faces(CollectionId=event, FaceIds=ids[:2])["Faces"]] == [ids[1]]
    with pytest.raises(client.exceptions.InvalidPaginationTokenException):
        client.list_faces(CollectionId=event, NextToken="garbage")


def test_stop_ends_open_connections_and_pending_requests() -> None:
    fake = FakeRekognition().start()
    client = _client(fake, NO_RETRIES)
    client.create_collection(CollectionId="c")  # leaves a keep-alive connection in the pool
    fake.delay("ListCollections", 30)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.list_collections()
        except Exception as exc:
            errors.append(exc)

    waiter = threading.Thread(target=call)
    waiter.start()
    while fake.count("ListCollections") == 0:
        time.sleep(0.01)
    started = time.monotonic()
    fake.stop()
    assert not [t for t in threading.enumerate() if "process_request" in t.name]  # joined, not abandoned
    waiter.join(10)
    client.close()
    assert time.monotonic() - started < 5
    assert not waiter.is_alive()
    fake.stop()  # idempotent
