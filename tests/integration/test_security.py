"""TLS on the gRPC port and bearer tokens with reader and writer roles; health stays open; tokens never
reach the logs."""

from __future__ import annotations

import datetime as dt
import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coldopen.api.auth import Authenticator
from coldopen.api.client import Client
from coldopen.api.server import create_server
from coldopen.app.service import ColdOpenService
from coldopen.v1 import coldopen_pb2 as pb
from coldopen.v1 import coldopen_pb2_grpc as pb_grpc
from tests.conftest import upload

READER_TOKEN = "reader-secret-0123456789abcdef"
WRITER_TOKEN = "writer-secret-fedcba9876543210"


def self_signed(tmp_path) -> tuple[str, str]:
    """A throwaway CA-less certificate for 127.0.0.1 / localhost (PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def secure_server(models, base_settings, tmp_path):
    cert, key = self_signed(tmp_path)
    readers = tmp_path / "readers.txt"
    readers.write_text(f"# ranker services\nranker {READER_TOKEN}\n")
    writers = tmp_path / "writers.txt"
    writers.write_text(f"uploader {WRITER_TOKEN}\n")
    settings = base_settings.replace(
        data_dir=tmp_path / "data", tls_cert=cert, tls_key=key,
        reader_tokens_file=str(readers), writer_tokens_file=str(writers),
    )
    server = create_server(settings).start()
    server.attach(ColdOpenService.open(settings, models))
    creds = grpc.ssl_channel_credentials(root_certificates=open(cert, "rb").read())
    channel = grpc.secure_channel(f"localhost:{server.port}", creds)
    yield server, channel, cert
    channel.close()
    server.stop(grace=1)


def _code(call):
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code(), e.value.details()


def test_roles_tls_and_open_health(secure_server, clips, caplog):
    caplog.set_level(logging.DEBUG)
    server, channel, cert = secure_server
    stub = pb_grpc.ContentIndexStub(channel)
    reader = (("authorization", f"Bearer {READER_TOKEN}"),)
    writer = (("authorization", f"Bearer {WRITER_TOKEN}"),)
    data = clips["fox"].read_bytes()

    # health needs no token
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING

    # no token / unknown token / malformed header: UNAUTHENTICATED, saying what to send
    code, details = _code(lambda: stub.Search(pb.SearchRequest(text="x"), timeout=10))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "Bearer" in details
    code, _ = _code(lambda: stub.Search(pb.SearchRequest(text="x"), timeout=10,
                                        metadata=(("authorization", "Bearer not-a-real-token-at-all"),)))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _ = _code(lambda: stub.Ingest(upload(data, "fox"), timeout=30,
                                        metadata=(("authorization", WRITER_TOKEN),)))
    assert code == grpc.StatusCode.UNAUTHENTICATED

    # a reader cannot write: Ingest, Delete, RecordEngagement, Route with store
    code, details = _code(lambda: stub.Ingest(upload(data, "fox"), timeout=30, metadata=reader))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "writer" in details and "ranker" in details
    code, _ = _code(lambda: stub.DeleteVideo(pb.DeleteVideoRequest(video_id="fox"), timeout=10, metadata=reader))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    event = pb.EngagementEvent(event_id="e1", video_id="fox", impressions=10)
    code, _ = _code(lambda: stub.RecordEngagement(iter([event]), timeout=10, metadata=reader))
    assert code == grpc.StatusCode.PERMISSION_DENIED

    def route(store: bool):
        yield pb.RouteRequest(query=pb.RouteQuery(upload=pb.VideoMetadata(video_id="r1"), store=store))
        yield pb.RouteRequest(chunk=data)

    code, details = _code(lambda: stub.Route(route(True), timeout=60, metadata=reader))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "store" in details

    # a writer writes; a reader reads and routes without storing
    reply = stub.Ingest(upload(data, "fox"), timeout=60, metadata=writer)
    assert reply.video_id == "fox"
    hits = stub.Search(pb.SearchRequest(text="astronaut", k=5), timeout=10, metadata=reader)
    assert [n.video_id for n in hits.neighbours] == ["fox"]
    assert stub.Route(route(False), timeout=60, metadata=reader).pool_size == 0
    # a writer token is not a reader token, but it may route with store (that is an ingest)
    code, _ = _code(lambda: stub.Search(pb.SearchRequest(text="x"), timeout=10, metadata=writer))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, details = _code(lambda: stub.Route(route(False), timeout=60, metadata=writer))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "reader" in details
    assert stub.Route(route(True), timeout=60, metadata=writer).ingested.video_id == "r1"

    # the client library speaks TLS + tokens
    with Client(f"localhost:{server.port}", timeout=30, token=READER_TOKEN, ca_cert=cert) as client:
        assert client.get("fox")["metadata"]["video_id"] == "fox"

    # plaintext to the TLS port does not get through
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as plain:
        code, _ = _code(lambda: pb_grpc.ContentIndexStub(plain).Search(pb.SearchRequest(text="x"), timeout=5,
                                                                           metadata=reader))
        assert code == grpc.StatusCode.UNAVAILABLE

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert READER_TOKEN not in logged and WRITER_TOKEN not in logged
    assert "ranker" in logged  # callers are named by their token's name


def test_bad_token_files_and_tls_settings_fail_at_start_with_a_fix(tmp_path, base_settings):
    bad = tmp_path / "tokens.txt"
    bad.write_text("only-one-field\n")
    with pytest.raises(ValueError, match="line 1 is not '<name> <token>'"):
        Authenticator.from_files(bad, None)
    with pytest.raises(ValueError, match="cannot be read"):
        Authenticator.from_files(tmp_path / "missing.txt", None)
    with pytest.raises(ValueError, match="tls_cert and tls_key must be given together"):
        base_settings.replace(tls_cert="cert.pem")
    with pytest.raises(ValueError, match="TLS certificate or key cannot be read"):
        create_server(base_settings.replace(tls_cert=str(tmp_path / "c.pem"), tls_key=str(tmp_path / "k.pem")))
