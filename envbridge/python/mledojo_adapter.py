#!/usr/bin/env python3
"""Serve a real MLE-Dojo over smtrain's environment HTTP protocol (DESIGN 6.4).

    GET    /v1/healthz                 -> {"ok": true}
    GET    /v1/tasks                   -> {"tasks": [name, ...]}
    POST   /v1/envs  {task, seed, max_steps, time_budget_s}
                                       -> {env_id, observation, info}
    POST   /v1/envs/{id}/step {action, params}
                      -> {observation, reward, terminated, truncated, info}
    GET    /v1/envs/{id}/history       -> MLE-Dojo history.json
    DELETE /v1/envs/{id}               -> {"ok": true}

Errors are JSON {"error": {"code", "message"}} with a 4xx/5xx status, never a
traceback. Standard library only (http.server + json); MLE-Dojo itself must be
importable (pip install -e MLE-Dojo, or PYTHONPATH).

MLE-Dojo facts this adapter handles:
  * KaggleEnvironment must be constructed on the main thread: its Sandbox
    installs SIGTERM/SIGINT/SIGHUP handlers (signal.signal works on the main
    thread only) and an atexit hook. Requests are served by one thread each
    (HTTP/1.0, connection closed after each response); constructions are
    handed to the main thread, while steps run on their request's thread, so
    health, task, history and delete calls are answered while code runs and
    the environments of one adapter step concurrently (one step at a time per
    environment). The signal handlers a construction installs are put back
    as they were, and the atexit hook is removed when the env is deleted:
    otherwise each environment chains the previous handlers and after ~1000
    of them SIGTERM raises RecursionError.
  * step(action, **params) returns a 2-tuple (obs, reward) and never
    terminates; it is normalised to Gymnasium's 5-tuple: terminated is false
    unless the env says otherwise, truncated is true when max_steps or the
    time budget is reached. Steps after that are refused (409 episode_over).
  * step raises ValueError on bad input: that becomes an error observation
    (action_status FAILED, MLE-Dojo-shaped feedback with the whole message),
    reward 0, info.invalid_action true, not an HTTP error. Such a step leaves
    no entry in history.json: every step's info says history_recorded
    true/false, and smtrain's rollout rules treat unrecorded steps like
    unparseable replies.
  * Observations carry remaining_steps and remaining_seconds (MLE-Dojo's
    own agent loop tracks them; the protocol's clients need them to fill
    the prompt's budget), and the create answer's info carries
    step_timeout_s: the longest a step can take (the execution timeout,
    capped by the time budget, plus a minute), which smtrain's client uses
    as its step timeout, so the two sides share one setting.
  * --score-mode raw is refused: raw metric values are unbounded and
    lower-is-better for some tasks, which rewards, best-reward summaries and
    the loaders cannot compare (MLE-Dojo also writes best_position_score 0.0
    in that mode).
  * NaN/Infinity (Python writes them bare into JSON) become null, recursively.
  * The env prints to stdout: stdout is redirected to stderr around env calls,
    and file descriptor 1 is pointed at stderr at start-up, so nothing ever
    mixes with the protocol (which is HTTP only anyway).

Usage:
    python3 mledojo_adapter.py --data-dir ./data/prepared --output-dir ./runs \
        [--competitions a,b] [--host 127.0.0.1] [--port 8765] \
        [--execution-timeout 3600] [--score-mode position] [--gpu-device 0] \
        [--gpu-memory-limit 32] [--max-envs 4] [--idle-timeout 3600] \
        [--api-key-file FILE] [--max-envs-per-key N] [--insecure-no-auth]

Authentication (as `smtrain env serve`): with --api-key-file FILE (one key per
line, # comments) or $SMTRAIN_ENV_API_KEY (comma-separated keys) every route
but GET /v1/healthz needs "Authorization: Bearer KEY" (else 401
unauthorized); keys are compared in constant time and never logged; an
environment belongs to the key that created it; each key holds at most
--max-envs-per-key environments (default: --max-envs split evenly over the
keys when there are several). A non-loopback --host without a key is refused
unless --insecure-no-auth. For TLS put a reverse proxy in front.

--data-dir holds MLE-Dojo prepared competitions: <data-dir>/<name>/data/
{public,private}. Each environment writes under <output-dir>/<name>/<env_id>/
(env_history/history.json as MLE-Dojo does).
"""

import argparse
import atexit
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import queue
import re
import secrets
import signal
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PROTOCOL_MAX_BODY = 8 << 20
KEY_ENV = "SMTRAIN_ENV_API_KEY"
MIN_KEY_LEN = 16


def log(msg):
    sys.stderr.write("mledojo_adapter: %s\n" % msg)
    sys.stderr.flush()


def sanitize(v, depth=0):
    """JSON-safe copy of v: NaN/Inf -> None, numpy scalars/arrays -> Python."""
    if depth > 200:
        return "<too deep>"
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): sanitize(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [sanitize(x, depth + 1) for x in v]
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if hasattr(v, "tolist"):  # numpy arrays and scalars
        try:
            return sanitize(v.tolist(), depth + 1)
        except Exception:
            pass
    if hasattr(v, "item"):
        try:
            return sanitize(v.item(), depth + 1)
        except Exception:
            pass
    try:
        f = float(v)
        return f if math.isfinite(f) else None
    except (TypeError, ValueError):
        return str(v)


def dumps(v):
    return json.dumps(sanitize(v), allow_nan=False, ensure_ascii=False).encode("utf-8")


class APIError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def one_line(s):
    s = str(s).strip()
    return s.splitlines()[0] if s else s


def full_message(e, limit=2000):
    """An exception's whole message (MLE-Dojo puts details such as
    "Details: Available info types ..." on later lines), bounded."""
    s = str(e).strip()
    return s if len(s) <= limit else s[:limit] + "..."


STEP_SLACK_S = 60  # scoring and feedback after a code run, in step_timeout_s


class MainThread:
    """Runs callables on the main thread for the request threads."""

    def __init__(self):
        self.jobs = queue.Queue()

    def call(self, fn):
        if threading.current_thread() is threading.main_thread():
            return fn()
        done, box = threading.Event(), {}

        def job():
            try:
                box["value"] = fn()
            except BaseException as e:  # handed back to the caller
                box["error"] = e
            finally:
                done.set()
        self.jobs.put(job)
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def run_pending(self, timeout):
        try:
            job = self.jobs.get(timeout=timeout)
        except queue.Empty:
            return
        job()


def check_key(key):
    """None if key is usable, else why not (never the key itself)."""
    if len(key) < MIN_KEY_LEN:
        return "key is %d characters; use at least %d (e.g. openssl rand -hex 32)" % (len(key), MIN_KEY_LEN)
    if any(ord(c) <= 32 or ord(c) >= 127 for c in key):
        return "key has a space, control or non-ASCII character; use printable ASCII"
    return None


def load_keys(path, env=None):
    """SHA-256 digests of the keys of path (one per line, # comments), else of
    $SMTRAIN_ENV_API_KEY (comma-separated); [] for none. Errors name the file
    and line, never a key."""
    env = os.environ if env is None else env
    keys = []
    if path:
        with open(path, "r", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                why = check_key(line)
                if why:
                    raise ValueError("%s:%d: %s" % (path, n, why))
                keys.append(line)
        if not keys:
            raise ValueError("%s: no key" % path)
    else:
        for i, k in enumerate(x.strip() for x in env.get(KEY_ENV, "").split(",")):
            if not k:
                continue
            why = check_key(k)
            if why:
                raise ValueError("$%s: key %d: %s" % (KEY_ENV, i + 1, why))
            keys.append(k)
    digests = []
    for k in keys:
        d = hashlib.sha256(k.encode("ascii")).digest()
        if d not in digests:
            digests.append(d)
    return digests


def match_key(digests, token):
    """1-based number of the key token is, or 0; every key is compared, in
    constant time, as SHA-256 digests."""
    d = hashlib.sha256(token.encode("utf-8", "replace")).digest()
    found = 0
    for i, k in enumerate(digests):
        if hmac.compare_digest(d, k):
            found = i + 1
    return found


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Episode:
    """One KaggleEnvironment plus the protocol's limits."""

    def __init__(self, env_id, task, env, out_dir, seed, max_steps, time_budget, key=0):
        self.env_id, self.task, self.env, self.out_dir = env_id, task, env, out_dir
        self.key = key
        self.seed, self.max_steps, self.time_budget = seed, max_steps, time_budget
        self.created = time.monotonic()
        self.last_used = self.created
        self.steps = 0
        self.done = False
        self.lock = threading.Lock()  # held while a step runs
        self.cleanup = None  # the sandbox's atexit hook, run on delete

    def remaining(self):
        """remaining_steps / remaining_seconds of the episode's budgets."""
        out = {}
        if self.max_steps > 0:
            out["remaining_steps"] = max(0, self.max_steps - self.steps)
        if self.time_budget > 0:
            out["remaining_seconds"] = max(0, int(math.ceil(self.time_budget - self.elapsed())))
        return out

    def elapsed(self):
        return time.monotonic() - self.created

    def over_budget(self):
        return self.time_budget > 0 and self.elapsed() >= self.time_budget


class Adapter:
    def __init__(self, args):
        self.args = args
        self.data_dir = Path(args.data_dir).resolve()
        self.output_dir = Path(args.output_dir).resolve()
        self.episodes = {}
        self.pending = 0  # creations in progress (count against --max-envs)
        self.mu = threading.Lock()  # guards episodes and pending
        self.main = MainThread()
        self._tasks = None
        self.keys = getattr(args, "keys", None) or []

    # MLE-Dojo glue -------------------------------------------------------

    def tasks(self):
        if self._tasks is None:
            if self.args.competitions:
                names = [c.strip() for c in self.args.competitions.split(",") if c.strip()]
            else:
                names = sorted(
                    p.name for p in self.data_dir.iterdir()
                    if (p / "data" / "public").is_dir() and (p / "data" / "private").is_dir()
                ) if self.data_dir.is_dir() else []
            self._tasks = sorted(set(names))
        return self._tasks

    def construct(self, task, out_dir, env_id, seed):
        """make_env and reset on the main thread, leaving the process's
        signal handlers as they were and the env its own logger."""
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            env = self.make_env(task, out_dir)
        finally:
            for sig, h in saved.items():
                if h is not None:
                    signal.signal(sig, h)
        cleanup = None
        sb = getattr(env, "sandbox", None)
        fn = getattr(sb, "_cleanup_processes", None)
        if fn is not None:
            atexit.unregister(fn)  # run on delete instead
            cleanup = fn
        # MLE-Dojo logs every env of a competition through one named logger
        # whose handlers each new env replaces: give this env its own.
        shared = getattr(env, "logger", None)
        if isinstance(shared, logging.Logger):
            own = logging.getLogger("%s.%s" % (shared.name, env_id))
            own.setLevel(shared.level)
            own.propagate = False
            own.handlers = list(shared.handlers)
            shared.handlers = []
            env.logger = own
        obs, info = env.reset(seed=seed)
        return env, cleanup, obs, info

    def make_env(self, task, out_dir):
        """Construct MLE-Dojo's KaggleEnvironment (on the main thread)."""
        from mledojo.gym.competition import CompetitionRegistry, CompInfo
        from mledojo.competitions import get_metric
        from mledojo.gym.env import KaggleEnvironment

        metric_class = get_metric(task)
        higher_is_better = True
        try:
            higher_is_better = bool(metric_class().higher_is_better)
        except Exception:
            pass
        registry = CompetitionRegistry()
        registry.register(
            name=task,
            data_dir=str(self.data_dir / task / "data"),
            comp_info=CompInfo(higher_is_better=higher_is_better),
            metric_class=metric_class,
        )
        kwargs = dict(
            competition_name=task,
            output_dir=str(out_dir),
            competition_registry=registry,
            score_mode=self.args.score_mode,
            execution_timeout=self.args.execution_timeout,
        )
        if self.args.gpu_device is not None:
            kwargs["gpu_device"] = self.args.gpu_device
        if self.args.gpu_memory_limit is not None:
            kwargs["gpu_memory_limit"] = self.args.gpu_memory_limit
        return KaggleEnvironment.make(**kwargs)

    @staticmethod
    def error_observation(env, message):
        """An MLE-Dojo-shaped observation for an action the env rejected."""
        def attr(name):
            return getattr(env, name, None)
        summary = None
        try:
            summary = env._get_history_summary()
        except Exception:
            pass
        return {
            "action_status": "FAILED",
            "feedback": {"base": {"feedback_status": "FAILED", "feedback": message}},
            "current_raw_score": attr("current_raw_score"),
            "current_position_score": attr("current_position_score"),
            "best_raw_score": attr("best_raw_score"),
            "best_position_score": attr("best_position_score"),
            "history_summary": summary,
        }

    # Protocol operations -------------------------------------------------

    def key_limit(self):
        """Environments one key may hold (0: no per-key limit)."""
        if getattr(self.args, "max_envs_per_key", 0):
            return self.args.max_envs_per_key
        if len(self.keys) > 1:
            return -(-self.args.max_envs // len(self.keys))
        return 0

    def create(self, body, key=0):
        task = body.get("task")
        if not isinstance(task, str) or not task:
            raise APIError(400, "bad_request", "task is required")
        seed = body.get("seed", 0) or 0
        max_steps = body.get("max_steps", 0) or 0
        budget = body.get("time_budget_s", 0) or 0
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise APIError(400, "bad_request", "seed must be an integer")
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 0:
            raise APIError(400, "bad_request", "max_steps must be an integer >= 0")
        if not isinstance(budget, (int, float)) or isinstance(budget, bool) or budget < 0 or not math.isfinite(budget):
            raise APIError(400, "bad_request", "time_budget_s must be a number >= 0")
        if task not in self.tasks():
            raise APIError(404, "unknown_task", "unknown task %r (GET /v1/tasks lists them)" % task)
        with self.mu:
            live = len(self.episodes) + self.pending
            if live >= self.args.max_envs:
                raise APIError(503, "too_many_envs", "%d environments live, limit %d; DELETE finished ones"
                               % (live, self.args.max_envs))
            lim = self.key_limit()
            held = sum(1 for ep in self.episodes.values() if ep.key == key)
            if key and lim and held >= lim:
                raise APIError(429, "too_many_envs", "this API key holds %d environments, its limit is %d (of %d on the server); DELETE finished ones"
                               % (held, lim, self.args.max_envs))
            self.pending += 1
        try:
            env_id = secrets.token_hex(12)
            out_dir = self.output_dir / task / env_id
            out_dir.mkdir(parents=True, exist_ok=True)
            try:
                env, cleanup, obs, info = self.main.call(lambda: self.construct(task, out_dir, env_id, seed))
            except Exception as e:
                log("create %s failed: %s" % (task, traceback.format_exc()))
                raise APIError(500, "env_error", "creating environment: %s: %s" % (type(e).__name__, one_line(e)))
            ep = Episode(env_id, task, env, out_dir, seed, max_steps, float(budget), key)
            ep.cleanup = cleanup
            with self.mu:
                self.episodes[env_id] = ep
        finally:
            with self.mu:
                self.pending -= 1
        log("env %s created%s: task %s seed %d max_steps %d time_budget %gs" % (env_id, " (key %d)" % key if key else "", task, seed, max_steps, budget))
        info = dict(info or {})
        info.setdefault("output_dir", str(out_dir))
        info["step_timeout_s"] = self.step_timeout(ep)
        obs = dict(obs) if isinstance(obs, dict) else {"feedback": obs}
        obs.update(ep.remaining())
        return {"env_id": env_id, "observation": obs, "info": info}

    def step_timeout(self, ep):
        """The longest one step can take: a code run (the execution timeout,
        capped by the time budget) plus scoring."""
        run = float(self.args.execution_timeout)
        if ep.time_budget > 0:
            run = min(run, ep.time_budget)
        return run + STEP_SLACK_S

    def get(self, env_id, key=0):
        with self.mu:
            ep = self.episodes.get(env_id)
        if ep is not None and ep.key != key:
            ep = None  # another key's environment
        if ep is None:
            raise APIError(404, "unknown_env", "unknown env %r (never created, deleted, or reaped after idling)" % env_id)
        ep.last_used = time.monotonic()
        return ep

    def step(self, env_id, body, key=0):
        ep = self.get(env_id, key)
        action = body.get("action")
        params = body.get("params")
        if not isinstance(action, str) or not action:
            raise APIError(400, "bad_request", "action is required")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise APIError(400, "bad_request", "params must be a JSON object")
        if not ep.lock.acquire(blocking=False):
            raise APIError(409, "step_in_progress", "a step of env %r is still running; an episode is sequential" % env_id)
        try:
            return self.step_locked(ep, action, params)
        finally:
            ep.last_used = time.monotonic()
            ep.lock.release()

    def step_locked(self, ep, action, params):
        if ep.done:
            raise APIError(409, "episode_over", "episode already terminated or truncated; create a new env")
        if ep.over_budget():
            # The budget ran out between steps: do not start new work.
            ep.done = True
            obs = self.error_observation(ep.env, "Time budget of %gs exhausted; the episode is over." % ep.time_budget)
            obs.update(ep.remaining())
            return {"observation": obs, "reward": 0.0, "terminated": False, "truncated": True,
                    "info": {"TimeLimit.truncated": True, "time_budget_exhausted": True, "history_recorded": False}}
        info = {"action": action}
        terminated = False
        self.cap_execution_timeout(ep)
        try:
            out = ep.env.step(action, **params)
        except (ValueError, TypeError) as e:
            # MLE-Dojo raises ValueError for invalid actions and parameters,
            # before recording anything.
            msg = full_message(e)
            obs, reward = self.error_observation(ep.env, msg), 0.0
            info.update({"invalid_action": True, "error": msg, "status": "FAILED", "history_recorded": False})
        else:
            info["history_recorded"] = True  # step() records before returning
            if not isinstance(out, tuple) or len(out) not in (2, 5):
                raise APIError(500, "env_error", "env.step returned %s, want (obs, reward)" % type(out).__name__)
            obs, reward = out[0], out[1]
            if len(out) == 5:  # a Gymnasium-style env, if MLE-Dojo ever returns one
                terminated = bool(out[2])
                if isinstance(out[4], dict):
                    info.update(out[4])
            if isinstance(obs, dict) and "action_status" in obs:
                info["status"] = obs.get("action_status")
        ep.steps += 1
        try:
            reward = float(reward)
        except (TypeError, ValueError):
            reward = 0.0
        truncated = False
        if not terminated:
            if ep.max_steps > 0 and ep.steps >= ep.max_steps:
                truncated = True
                info["TimeLimit.truncated"] = True
            if ep.over_budget():
                truncated = True
                info["time_budget_exhausted"] = True
        if terminated or truncated:
            ep.done = True
        info["step"] = ep.steps
        info.update(ep.remaining())
        obs = dict(obs) if isinstance(obs, dict) else {"feedback": obs}
        obs.update(ep.remaining())
        return {"observation": obs, "reward": reward, "terminated": terminated,
                "truncated": truncated, "info": info}

    @staticmethod
    def cap_execution_timeout(ep):
        """Keep one code run from overshooting the episode's time budget:
        MLE-Dojo's Sandbox reads its execution_timeout attribute per run."""
        sb = getattr(ep.env, "sandbox", None)
        if ep.time_budget <= 0 or sb is None or not hasattr(sb, "execution_timeout"):
            return
        if not hasattr(ep, "base_timeout"):
            ep.base_timeout = sb.execution_timeout
        left = max(1, int(math.ceil(ep.time_budget - ep.elapsed())))
        sb.execution_timeout = left if not ep.base_timeout else min(int(ep.base_timeout), left)

    def history(self, env_id, key=0):
        ep = self.get(env_id, key)
        path = getattr(ep.env, "history_file", None)
        if path is None:
            path = ep.out_dir / "env_history" / "history.json"
        try:
            with open(path, "r", encoding="utf-8") as fh:
                data = json.load(fh)  # accepts bare NaN/Infinity
        except FileNotFoundError:
            raise APIError(404, "history_unsupported", "no history.json for env %r" % env_id)
        except ValueError as e:
            raise APIError(500, "env_error", "history.json is not valid JSON: %s" % one_line(e))
        return data

    def delete(self, env_id, key=0):
        ep = self.get(env_id, key)
        with self.mu:
            if self.episodes.pop(env_id, None) is None:
                raise APIError(404, "unknown_env", "unknown env %r (deleted meanwhile)" % env_id)
        self.close_episode(ep)
        log("env %s (%s) deleted after %d steps" % (env_id, ep.task, ep.steps))
        return {"ok": True}

    def close_episode(self, ep):
        """Kill the env's code runs (a step still running then returns),
        wait for its step, close it."""
        if ep.cleanup is not None:
            try:
                ep.cleanup(force=True)
            except TypeError:
                ep.cleanup()
            except Exception as e:
                log("env %s cleanup: %s: %s" % (ep.env_id, type(e).__name__, one_line(e)))
        with ep.lock:
            try:
                ep.env.close()
            except Exception as e:
                log("env %s close: %s: %s" % (ep.env_id, type(e).__name__, one_line(e)))

    def reap_idle(self):
        now = time.monotonic()
        with self.mu:
            idle = [(i, ep) for i, ep in self.episodes.items()
                    if now - ep.last_used > self.args.idle_timeout and not ep.lock.locked()]
            for env_id, _ in idle:
                del self.episodes[env_id]
        for env_id, ep in idle:
            self.close_episode(ep)
            log("env %s (%s) idle for more than %gs: closed" % (env_id, ep.task, self.args.idle_timeout))

    def close_all(self):
        with self.mu:
            eps = list(self.episodes.values())
            self.episodes.clear()
        for ep in eps:
            self.close_episode(ep)


ENV_PATH = re.compile(r"^/v1/envs/([A-Za-z0-9_-]+)(/step|/history)?$")


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection (each on its own thread).
    protocol_version = "HTTP/1.0"
    server_version = "smtrain-mledojo-adapter/1"
    timeout = 60  # seconds a client may take to send its request

    adapter = None  # set by main

    def log_message(self, fmt, *args):
        if self.adapter.args.verbose:
            log("%s %s" % (self.address_string(), fmt % args))

    def send_json(self, status, obj):
        try:
            body = dumps(obj)
        except Exception as e:
            status = 500
            body = dumps({"error": {"code": "internal", "message": "encoding response: %s" % one_line(e)}})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for name, value in getattr(self, "extra_headers", []):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        length = self.headers.get("Content-Length")
        if length is None:
            raise APIError(411, "bad_request", "Content-Length required")
        try:
            n = int(length)
        except ValueError:
            raise APIError(400, "bad_request", "bad Content-Length")
        if n > PROTOCOL_MAX_BODY:
            raise APIError(413, "request_too_large", "request body larger than %d bytes" % PROTOCOL_MAX_BODY)
        raw = self.rfile.read(n) if n > 0 else b""
        if not raw.strip():
            raise APIError(400, "bad_request", "empty request body (want a JSON object)")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise APIError(400, "bad_request", "invalid JSON body: %s" % one_line(e))
        if not isinstance(body, dict):
            raise APIError(400, "bad_request", "request body must be a JSON object")
        return body

    def authenticate(self, method, path):
        """Number of the request's key (0 without keys); APIError 401 when
        a key is needed and missing or wrong. The key is never logged."""
        keys = self.adapter.keys
        if not keys or (method == "GET" and path == "/v1/healthz"):
            return 0
        scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            msg = "missing API key: send the header 'Authorization: Bearer <key>'"
        else:
            key = match_key(keys, token)
            if key:
                return key
            msg = "invalid API key"
        log("401 %s %s from %s: %s" % (method, path[:200], self.client_address[0], msg))
        raise APIError(401, "unauthorized", msg)

    def dispatch(self, method):
        a = self.adapter
        path = self.path.split("?", 1)[0]
        try:
            key = self.authenticate(method, path)
            if method == "GET" and path == "/v1/healthz":
                return self.send_json(200, {"ok": True})
            if method == "GET" and path == "/v1/tasks":
                return self.send_json(200, {"tasks": a.tasks()})
            if method == "POST" and path == "/v1/envs":
                return self.send_json(200, a.create(self.read_body(), key))
            m = ENV_PATH.match(path)
            if m:
                env_id, sub = m.group(1), m.group(2)
                if method == "POST" and sub == "/step":
                    return self.send_json(200, a.step(env_id, self.read_body(), key))
                if method == "GET" and sub == "/history":
                    return self.send_json(200, a.history(env_id, key))
                if method == "DELETE" and sub is None:
                    return self.send_json(200, a.delete(env_id, key))
            raise APIError(404, "not_found", "no route %s %s" % (method, path))
        except APIError as e:
            if e.status == 401:
                self.extra_headers = [("WWW-Authenticate", 'Bearer realm="smtrain"')]
            self.send_json(e.status, {"error": {"code": e.code, "message": e.message}})
        except Exception as e:
            log("internal error on %s %s:\n%s" % (method, path, traceback.format_exc()))
            self.send_json(500, {"error": {"code": "internal", "message": "%s: %s" % (type(e).__name__, one_line(e))}})

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")


def parse_args(argv):
    p = argparse.ArgumentParser(description="Serve MLE-Dojo over smtrain's environment HTTP protocol.")
    p.add_argument("--data-dir", required=True, help="MLE-Dojo prepared data: <dir>/<competition>/data/{public,private}")
    p.add_argument("--output-dir", required=True, help="where each environment writes its history")
    p.add_argument("--competitions", default="", help="comma-separated names (default: every prepared one)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default loopback)")
    p.add_argument("--port", type=int, default=8765, help="listen port (0: any free port)")
    p.add_argument("--execution-timeout", type=int, default=3600, help="MLE-Dojo sandbox timeout per code run (s); capped by each episode's time budget; announced to clients as step_timeout_s")
    p.add_argument("--score-mode", default="position", choices=["position", "raw"], help="position (raw is refused: see --help text of the module)")
    p.add_argument("--gpu-device", type=int, default=None)
    p.add_argument("--gpu-memory-limit", type=int, default=None)
    p.add_argument("--max-envs", type=int, default=4, help="live environments at most")
    p.add_argument("--idle-timeout", type=float, default=3600.0, help="close environments idle this long (s)")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    p.add_argument("--api-key-file", default="", help="API keys, one per line (# comments); default: $%s (comma-separated)" % KEY_ENV)
    p.add_argument("--max-envs-per-key", type=int, default=0, help="live environments per API key (0: --max-envs split over the keys)")
    p.add_argument("--insecure-no-auth", action="store_true", help="allow a non-loopback --host without an API key")
    return p.parse_args(argv)


def main(argv=None):
    # Nothing may ever reach the real stdout: the protocol is HTTP only, and
    # MLE-Dojo (and processes it starts) print freely.
    try:
        sys.stdout.flush()
        os.dup2(2, 1)
    except OSError:
        pass
    sys.stdout = sys.stderr
    args = parse_args(argv)
    try:
        args.keys = load_keys(args.api_key_file)
    except (OSError, ValueError) as e:
        log("error: %s" % one_line(e))
        return 2
    if args.max_envs_per_key < 0:
        log("error: --max-envs-per-key must be >= 0")
        return 2
    if args.score_mode == "raw":
        log("error: --score-mode raw is not supported: rewards would be raw metric values (unbounded, lower-is-better "
            "for some tasks) that smtrain's rewards, summaries and loaders cannot compare, and MLE-Dojo writes "
            "best_position_score 0.0 in that mode; use --score-mode position (history.json keeps each raw score)")
        return 2
    adapter = Adapter(args)
    Handler.adapter = adapter
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    host, port = server.server_address[:2]
    if not is_loopback(host):
        if not args.keys and not args.insecure_no_auth:
            server.server_close()
            log("error: refusing to listen on %s:%d (not loopback) without an API key: put one or more keys in a file "
                "(one per line, e.g. from `openssl rand -hex 32`) and pass --api-key-file FILE, or set $%s; "
                "--insecure-no-auth serves without authentication to anyone who can reach the address" % (host, port, KEY_ENV))
            return 2
        if not args.keys:
            log("WARNING: listening on %s:%d WITHOUT AUTHENTICATION (--insecure-no-auth): anyone who can reach "
                "this address can use every route" % (host, port))
    log("authentication: %s" % ("%d API key(s)" % len(args.keys) if args.keys else "none"))
    log("serving %d task(s) from %s" % (len(adapter.tasks()), adapter.data_dir))
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    serving.start()
    log("listening on http://%s:%d" % (host, port))
    try:
        while not stop["flag"]:
            adapter.main.run_pending(0.2)  # constructions, on the main thread
            adapter.reap_idle()
    finally:
        server.shutdown()
        adapter.close_all()
        server.server_close()
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
