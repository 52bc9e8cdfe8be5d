"""A local HTTP server speaking the Materials Project API endpoints mp-api's MPRester uses.

Endpoints (as mp-api 0.46.5 calls them): ``GET /heartbeat`` (database version),
``GET /materials/summary/?chemsys=..&_fields=..&_limit=..[&_skip=..][&batch_id_not_eq=..]`` and
``GET /materials/thermo/?chemsys=..&thermo_types=..&_fields=..``, answering
``{"data": [...], "meta": {"total_doc": n}}`` pages. The ``x-api-key`` header must carry the
expected key (403 otherwise). ``faults`` scripts failures per chemical system: a list of HTTP
statuses (or ``"slow"`` to answer after ``slow_s``, ``"echo_key"`` for an error quoting the key)
consumed one per request; ``heartbeat_faults`` does the same for ``/heartbeat``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from pymatgen.core import Lattice, Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

GNOME_BATCH = "gnome_r2scan_statics"


class Material:
    def __init__(self, material_id: str, structure: Structure, energy: float, gnome: bool = False) -> None:
        self.material_id = material_id
        self.structure = structure
        self.energy = energy  # total, already on the MP2020 scale
        self.gnome = gnome

    def summary_doc(self, fields: list[str]) -> dict:
        doc = {
            "material_id": self.material_id,
            "structure": self.structure.as_dict(),
            "batch_id": GNOME_BATCH if self.gnome else None,
        }
        return {k: v for k, v in doc.items() if k in fields}

    def thermo_doc(self, fields: list[str]) -> dict:
        entry = ComputedStructureEntry(
            self.structure,
            self.energy,
            parameters={"run_type": "GGA"},
            entry_id=f"{self.material_id}-GGA",
        )
        doc = {
            "material_id": self.material_id,
            "thermo_type": "GGA_GGA+U",
            "entries": {"GGA": entry.as_dict()},
        }
        return {k: v for k, v in doc.items() if k in fields}


class FakeMaterialsProject:
    def __init__(self, materials: list[Material], api_key: str, db_version: str = "2025.09.25") -> None:
        self.materials = materials
        self.api_key = api_key
        self.db_version = db_version
        self.faults: dict[str, list] = defaultdict(list)
        self.heartbeat_faults: list[int] = []
        self.slow_s = 3.0
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/"

    def __enter__(self) -> FakeMaterialsProject:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def data_requests(self, path: str) -> list[dict]:
        return [params for p, params in self.requests if p == path]

    def _answer(self, path: str, params: dict[str, str], key: str | None) -> tuple[int, dict]:
        if path == "/heartbeat":
            with self.lock:
                fault = self.heartbeat_faults.pop(0) if self.heartbeat_faults else None
            if fault is not None:
                return fault, {"detail": f"scripted failure {fault}"}
            return 200, {
                "db_version": self.db_version,
                "access_controlled_batch_ids": [],
                "version": "0.87.0",
            }
        if key != self.api_key:
            return 403, {"detail": "invalid API key"}
        chemsys = params.get("chemsys", "")
        with self.lock:
            fault = self.faults[chemsys].pop(0) if self.faults[chemsys] else None
        if fault == "slow":
            time.sleep(self.slow_s)
        elif fault == "echo_key":  # a careless server quoting the key back in its error
            return 500, {"detail": f"internal error for key {key}"}
        elif fault is not None:
            return fault, {"detail": f"scripted failure {fault}"}
        fields = params.get("_fields", "").split(",")
        wanted = set(chemsys.split(","))
        chosen = [m for m in self.materials if m.structure.composition.chemical_system in wanted]
        if path == "/materials/summary/":
            if params.get("batch_id_not_eq") == GNOME_BATCH:
                chosen = [m for m in chosen if not m.gnome]
            docs = [m.summary_doc(fields) for m in chosen]
        elif path == "/materials/thermo/":
            assert params.get("thermo_types") == "GGA_GGA+U", params
            docs = [m.thermo_doc(fields) for m in chosen]  # thermo has no GNoME filter
        else:
            return 404, {"detail": f"no route {path}"}
        skip, limit = int(params.get("_skip", 0)), int(params.get("_limit", 1000))
        return 200, {"data": docs[skip : skip + limit], "meta": {"total_doc": len(docs)}}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                with fake.lock:
                    fake.requests.append((url.path, params))
                status, body = fake._answer(url.path, params, self.headers.get("x-api-key"))
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out first
                    pass

            def log_message(self, *args) -> None:
                pass

        return Handler


KEY = "k3y" + "0123456789abcdefghijklmnopqrs"  # 32 characters, as mp-api requires


def rock_salt_nacl() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def na_bcc() -> Structure:
    return Structure(Lattice.cubic(4.29), ["Na", "Na"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def cl2() -> Structure:
    return Structure(Lattice.cubic(6.0), ["Cl", "Cl"], [[0, 0, 0], [0.33, 0, 0]])


def cscl_type_nacl() -> Structure:
    return Structure(Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


# Energies per atom: Na -1, Cl -2, rock-salt NaCl -2.5 (on the hull).
MATERIALS = [
    Material("mp-127", na_bcc(), -1.0 * 2),
    Material("mp-22848", cl2(), -2.0 * 2),
    Material("mp-22862", rock_salt_nacl(), -2.5 * 8),
    Material("gnome-1", cscl_type_nacl(), -2.4 * 2, gnome=True),
]
