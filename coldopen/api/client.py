"""The Python client of the ContentIndex API (``coldopen.api.client.Client``), used by the CLI and the demo.

Results come back as plain dicts: the proto's field names, every field present, numbers as numbers. A file
is checked before anything is sent (UploadError says what is wrong with it); a failed call raises
grpc.RpcError, which ``describe_error`` turns into one line for a person. README: "Python client"."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coldopen.config.settings import MAX_CHUNK_BYTES
from coldopen.v1 import coldopen_pb2 as pb
from coldopen.v1 import coldopen_pb2_grpc as pb_grpc

_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
REQUEST_ID_HEADER = "x-request-id"


def to_dict(message) -> dict:
    """A reply as a dict with the proto's field names, every field present, and counts as numbers (protobuf's
    JSON mapping writes 64-bit integers as strings, for JavaScript's sake)."""
    d = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return _numbers(message.DESCRIPTOR, d)


def _numbers(descriptor, d: dict) -> dict:
    for f in descriptor.fields:
        if f.name not in d:
            continue
        value = d[f.name]
        if f.message_type is not None:
            d[f.name] = (
                [_numbers(f.message_type, v) for v in value] if isinstance(value, list) else _numbers(f.message_type, value)
            )
        elif f.type in _INT64:
            d[f.name] = [int(v) for v in value] if isinstance(value, list) else int(value)
    return d


class UploadError(ValueError):
    """A local file cannot be uploaded as it is (missing, a directory, empty, unreadable): nothing was sent."""


def check_upload(path: Path) -> int:
    """The size of a file that can be uploaded; UploadError saying what is wrong with it otherwise."""
    path = Path(path)
    try:
        if path.is_dir():
            raise UploadError(f"{path} is a directory; pass the video files in it (for example {path}/*.mp4)")
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except FileNotFoundError:
        raise UploadError(f"{path} does not exist; check the path") from None
    except PermissionError:
        raise UploadError(f"{path} cannot be read (permission denied); check its permissions") from None
    except OSError as e:
        raise UploadError(f"{path} cannot be read ({e.strerror}); check the path") from None
    if size == 0:
        raise UploadError(f"{path} is empty (0 bytes); pass a complete video or audio file")
    return size


def describe_error(e: grpc.RpcError, address: str, request_id: str = "") -> str:
    """What a failed call means for whoever made it, in one line: a server that cannot be reached says where
    it was looked for; any other error is the server's message with the call's request id (the server's log
    has it on every line about the call)."""
    code, details = e.code(), e.details() or ""
    rid = next((v for k, v in (e.trailing_metadata() or ()) if k == REQUEST_ID_HEADER), "") or request_id
    lowered = details.lower()
    if code == grpc.StatusCode.UNAVAILABLE and any(s in lowered for s in _UNREACHABLE):
        why = (
            "connection refused"
            if "refused" in lowered
            else "no such host"
            if "dns" in lowered or "resol" in lowered
            else "the connection failed (TLS on one side only?)"
            if "ssl" in lowered or "handshake" in lowered
            else "the connection failed"
        )
        return (
            f"cannot reach a ColdOpen server at {address} ({why}); check --server (or $COLDOPEN_SERVER), that "
            f"`coldopen serve` runs there, and --ca-cert if it serves TLS"
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and "deadline exceeded" == lowered.strip():
        return f"no answer from {address} within the call's time limit; retry, or raise --timeout"
    return f"{code.name}: {details}" + (f" (request id {rid})" if rid else "")


_UNREACHABLE = (
    "failed to connect",
    "connection refused",
    "dns resolution failed",
    "name resolution",
    "socket closed",
    "connect failed",
    "ssl",
    "handshake",
)


class Client:
    def __init__(self, address: str, timeout: float | None = 600.0, token: str = "", ca_cert: Path | None = None):
        """`token`: bearer token sent with every call; `ca_cert`: PEM CA bundle, which turns TLS on."""
        self.address = address
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        if ca_cert is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=Path(ca_cert).read_bytes())
            self._channel = grpc.secure_channel(address, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._token = token
        self._stub = pb_grpc.ContentIndexStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._timeout = timeout
        self.last_request_id = ""  # the x-request-id sent with the latest call (the server logs it)

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        """Each call's metadata: a new request id (and the bearer token)."""
        self.last_request_id = uuid.uuid4().hex[:16]
        md = [(REQUEST_ID_HEADER, self.last_request_id)]
        if self._token:
            md.append(("authorization", f"Bearer {self._token}"))
        return tuple(md)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def health(self) -> str:
        reply = self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def wait_until_serving(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                last = self.health()
                if last == "SERVING":
                    return
            except grpc.RpcError as e:
                last = e.code().name
            time.sleep(0.2)
        raise TimeoutError(f"server at {self.address} was not SERVING after {timeout:.0f} s (last status: {last})")

    def ingest(
        self,
        path: Path,
        *,
        video_id: str,
        creator_id: str = "",
        caption: str = "",
        hashtags: Sequence[str] = (),
        language_hint: str = "",
        on_progress: Callable[[int], None] | None = None,
    ) -> dict:
        check_upload(path)
        meta = pb.VideoMetadata(
            video_id=video_id,
            creator_id=creator_id,
            caption=caption,
            hashtags=list(hashtags),
            language_hint=language_hint,
            filename=Path(path).name,
        )
        first = pb.IngestRequest(metadata=meta)
        return to_dict(self._stub.Ingest(_upload(Path(path), first, on_progress), timeout=self._timeout, metadata=self._metadata))

    def search(
        self, *, video_id=None, text=None, embedding=None, k: int = 10, performing_only: bool = False, target: str = "visual"
    ) -> dict:
        request = pb.SearchRequest(k=k, performing_only=performing_only, target=pb.Target.Value(f"TARGET_{target.upper()}"))
        if video_id is not None:
            request.video_id = video_id
        elif text is not None:
            request.text = text
        elif embedding is not None:
            request.embedding.values.extend(float(v) for v in embedding)
        return to_dict(self._stub.Search(request, timeout=self._timeout, metadata=self._metadata))

    def get(self, video_id: str, include_embeddings: bool = False) -> dict:
        return to_dict(
            self._stub.GetVideo(
                pb.GetVideoRequest(video_id=video_id, include_embeddings=include_embeddings),
                timeout=self._timeout,
                metadata=self._metadata,
            )
        )

    def delete(self, video_id: str) -> dict:
        return to_dict(
            self._stub.DeleteVideo(pb.DeleteVideoRequest(video_id=video_id), timeout=self._timeout, metadata=self._metadata)
        )

    def search_by_sound(self, *, video_id: str | None = None, path: Path | None = None, limit: int = 10) -> dict:
        if video_id is not None:
            requests = iter([pb.SoundSearchRequest(query=pb.SoundQuery(video_id=video_id, limit=limit))])
        else:
            assert path is not None, "give video_id or path"
            check_upload(path)
            query = pb.SoundQuery(upload=pb.UploadInfo(filename=Path(path).name), limit=limit)
            requests = _upload(Path(path), pb.SoundSearchRequest(query=query), None, pb.SoundSearchRequest)
        return to_dict(self._stub.SearchBySound(requests, timeout=self._timeout, metadata=self._metadata))

    def rollout(self, video_id: str, audience: int = 0) -> dict:
        """WIDEN, HOLD or STOP for a video in its rollout, with the prior, posterior and reason."""
        return to_dict(
            self._stub.Rollout(
                pb.RolloutRequest(video_id=video_id, audience=audience), timeout=self._timeout, metadata=self._metadata
            )
        )

    def record_engagement(self, events: list) -> dict:
        """Events as EngagementEvent messages or dicts with its field names (event_id, video_id, likes, ...)."""
        messages = [e if isinstance(e, pb.EngagementEvent) else engagement_event(e) for e in events]
        return to_dict(self._stub.RecordEngagement(iter(messages), timeout=self._timeout, metadata=self._metadata))

    def route(
        self,
        *,
        video_id: str | None = None,
        path: Path | None = None,
        metadata: dict | None = None,
        store: bool = False,
        k: int = 10,
        weights: dict[str, float] | None = None,
        exclude_same_creator: bool = False,
        language: str = "",
        max_per_creator: int = 0,
        max_per_sound: int = 0,
        fusion: str = "",
    ) -> dict:
        query = pb.RouteQuery(
            k=k,
            weights=pb.RouteWeights(**(weights or {})),
            exclude_same_creator=exclude_same_creator,
            language=language,
            max_per_creator=max_per_creator,
            max_per_sound=max_per_sound,
            store=store,
            fusion=fusion,
        )
        if video_id is not None:
            query.video_id = video_id
            requests = iter([pb.RouteRequest(query=query)])
        else:
            assert path is not None, "give video_id or path"
            check_upload(path)
            query.upload.CopyFrom(pb.VideoMetadata(filename=Path(path).name, **(metadata or {})))
            requests = _upload(Path(path), pb.RouteRequest(query=query), None, pb.RouteRequest)
        return to_dict(self._stub.Route(requests, timeout=self._timeout, metadata=self._metadata))

    def get_sound(self, sound_id: str, window_s: float = 0.0) -> dict:
        return to_dict(
            self._stub.GetSound(
                pb.GetSoundRequest(sound_id=sound_id, window_s=window_s), timeout=self._timeout, metadata=self._metadata
            )
        )

    def list_sounds(self, window_s: float = 0.0, limit: int = 20) -> dict:
        return to_dict(
            self._stub.ListSounds(
                pb.ListSoundsRequest(window_s=window_s, limit=limit), timeout=self._timeout, metadata=self._metadata
            )
        )


def engagement_event(fields: dict) -> pb.EngagementEvent:
    """An EngagementEvent from a JSON object; ValueError names an unknown field or a wrong type."""
    try:
        return ParseDict(fields, pb.EngagementEvent())
    except ParseError as e:
        raise ValueError(str(e)) from None


def _upload(path: Path, first, on_progress, message=pb.IngestRequest) -> Iterator:
    yield first
    with path.open("rb") as f:
        while chunk := f.read(MAX_CHUNK_BYTES):
            yield message(chunk=chunk)
            if on_progress is not None:
                on_progress(len(chunk))
