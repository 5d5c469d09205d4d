"""A local stand-in for the external send API: ``mailings provider-sim``.

What it speaks is in docs/sending.md, "The send API".

A development tool: production code never imports it (CONVENTIONS.md). It
is the test oracle for "every message accepted once and on time": it
answers ``POST /send/{msgId}`` with ``200 {"code":0,"message":"OK"}`` and
keeps a ledger of every request (id, arrival instant, outcome, whether it was
accepted) and every accepted id with a count, so duplicates show.

Faults, from the command line (``--fail-rate 0.2``) or while it runs with
``POST /_sim/faults`` (a JSON object of the same names, ``-`` or ``_``;
validated, and a bad one changes nothing). Rates are probabilities per send
request, drawn from one random number, so they exclude each other and must
add up to at most 1; :class:`provider_sim.send.SendApi` gives the order of
the checks.

- ``latency``, ``latency_jitter`` (ms): answer after this long, ± jitter.
- ``fail_rate`` (500), ``reset_rate`` (TCP RST, no answer), ``hang_rate``
  (no answer until the client gives up, or ``hang_limit``),
  ``rate_limit_rate`` (429 with ``Retry-After: retry_after``),
  ``garbage_rate`` (a 200 that is not a success).
- ``nul_rate``: a hostile answer, picked by the seeded random draw: a 500
  with body ``b"boom\\x00bad"``, a 200 ``{"code":1,"message":"a\\u0000b"}``,
  a 200 of raw NUL bytes and bytes that are not UTF-8, or a 500 of ~1 MB.
  None of them is a success, and none accepts.
- ``accept_hang_rate``: accept (record the id), then never answer;
  ``accept_late_rate``: accept, then answer 200 after ``late_by`` ms
  (default 1000) instead of the latency. With a worker killed mid-request,
  these make "accepted once" falsifiable. Neither applies to an id that
  ``reject_rate`` rejects.
- ``reject_rate``: a 400 for good, always for the same ids (per seed).
- ``retry_after_first`` N, ``retry_after`` S (default 1; fractions allowed):
  the first N attempts of each msgId, counted from when N is set, get 429
  with ``Retry-After: S``; then it behaves as otherwise.
- ``max_rps`` R: at most R requests are let through in any one second: a
  sliding window over the arrivals let through (throttled ones do not
  count), so "at most R in any second" holds exactly; beyond it, 429 with
  ``Retry-After: 1``. A client pacing at exactly R a second sees a few 429s
  from jitter. ``max_rps_fixed`` R: the other common kind, a counter per
  whole second of the simulator's clock that lets R through and restarts on
  the second (so 2R may pass across its edge); 429 beyond, the same way.
- ``down``: every connection to the send port is reset as it arrives;
  ``outage_every``/``outage_for`` (s): a periodic outage. Going down resets
  every open send connection. The port stays bound through an outage (no
  other process can take it meanwhile), so a client sees resets, not refusals.
- ``token``: require ``Authorization: Bearer <token>`` (else 401).
- ``seed``: of every random draw.
- Windows that end by themselves, S seconds from when they are set:
  ``down_for``, ``unauthorized_for`` (401 to every send request, whatever
  the token) and ``forbidden_for`` (403).

Introspection: ``GET /_sim/stats`` (requests, accepted, duplicates, counts
by outcome, and whether it is down, unauthorized or forbidden now); ``GET
/_sim/accepted``: ``[msgId, count, first_accepted_at, phone]`` per accepted
id; ``GET /_sim/requests``: ``[msgId, arrived_at, outcome, accepted]`` per
send request in arrival order (``accepted``, added last, is true for the
outcomes ``accepted``, ``accepted_late`` and ``accepted_hang``; the others
are in :data:`provider_sim.ledger.OUTCOMES`); ``GET|POST /_sim/faults``;
``POST /_sim/reset`` (forgets requests and attempt counts, keeps faults).
While the send port is down they stay reachable on ``--control-port``.

In process (:func:`running_simulator`, :class:`SimulatorServer`): a
``clock`` (epoch seconds) stamps every recorded instant, so a test with a
fake clock can compare arrivals with the engine's; ``arrived_ids`` and
``await wait_arrived(ids)`` tell which msgIds have reached it;
``hold_answers()`` keeps every answer back (each request decided and
recorded as usual) until ``release_answers()``, so a test can act while
requests are in flight (``held_ids``, ``await wait_held()``).

It is the denominator of the throughput benchmarks, so it is a bare asyncio
protocol on uvloop (when installed) with httptools parsing HTTP/1.1
(keep-alive, pipelining, ``Content-Length`` and chunked bodies). Its CPU per
request (``python -m bench.bench_simulator``, 2-core shared machine, 50,000
requests, 256 in flight, 2026-12-01; runs vary by ±2 µs, so four of each,
alternated):

- end to end (kernel and uvloop included): 19.1 µs (runs 18.8-20.2), as
  the hand-written parser it replaced: 19.4 µs (16.4-20.6) for the old
  module, 19.25 µs for this code with that parser;
- its own Python work, in process: 5.4-6 µs with httptools, 6 µs
  hand-written; with requests split across reads 7-8 µs against 11 µs
  (the hand-written parser read the head again).
"""

from provider_sim.command import run_simulator
from provider_sim.faults import Faults, add_fault_options
from provider_sim.server import HANG_LIMIT, SimulatorServer, running_simulator

__all__ = [
    "HANG_LIMIT",
    "Faults",
    "SimulatorServer",
    "add_fault_options",
    "run_simulator",
    "running_simulator",
]
