"""The local object store's ports: each gRPC port is its HTTP port + 10000 and exists, because parts of
`weed mini` derive it that way whatever flag they get (an admin port of 60563 made them dial port 70563,
no volume could be assigned, and every upload hung: found by a fresh-clone test run)."""

from __future__ import annotations

from agrilake.core.settings import Settings
from agrilake.services import objectstore


def test_every_grpc_port_is_its_http_port_plus_10000_and_valid(tmp_path, monkeypatch):
    offered = iter([60563, 41000, 41000, 55536, 30001, 30002, 65000, 30003, 30004, 30005, 30006])
    monkeypatch.setattr(objectstore, "free_port", lambda: next(offered))
    monkeypatch.setattr(objectstore, "port_is_free", lambda port: port <= 65535)
    store = objectstore.ObjectStore(Settings.from_env(), tmp_path / "store", s3_port=0)
    ports = store._choose_ports()
    assert list(ports) == list(objectstore.PORT_FLAGS)
    http = {flag: port for flag, port in ports.items() if not flag.endswith(".grpc")}
    assert http == {"s3.port": 41000, "master.port": 30001, "volume.port": 30002, "filer.port": 30003,
                    "admin.port": 30004}  # 60563, 55536 and 65000 skipped, 41000 taken once
    assert all(ports[f"{flag}.grpc"] == port + 10000 for flag, port in http.items())
    assert len(set(ports.values())) == len(ports)


def test_a_previous_port_is_kept_when_it_and_its_grpc_port_are_free(tmp_path, monkeypatch):
    store = objectstore.ObjectStore(Settings.from_env(), tmp_path / "store", s3_port=0)
    monkeypatch.setattr(store, "state", lambda: {"ports": {"s3.port": 31000, "s3.port.grpc": 49999,
                                                           "master.port": 58000}})
    offered = iter(range(32000, 32100))
    monkeypatch.setattr(objectstore, "free_port", lambda: next(offered))
    monkeypatch.setattr(objectstore, "port_is_free", lambda port: port <= 65535)
    ports = store._choose_ports()
    assert (ports["s3.port"], ports["s3.port.grpc"]) == (31000, 41000)  # an old gRPC port is re-derived
    assert ports["master.port"] == 32000  # 58000 + 10000 is no port: a new one
