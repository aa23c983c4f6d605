"""STAND-IN for tests, not MLE-Dojo.

KaggleEnvironment with MLE-Dojo's constructor (make / __init__ keyword
arguments) and its step contract: step(action, **kwargs) returns only
(observation, reward), raises ValueError on bad input without recording a
history entry (its step_count still counts it, as MLE-Dojo's does, so the
next entry's step skips a number; an unknown info_type raises with a multi-line message, as
MLE-Dojo's does), never terminates, prints to stdout, writes
env_history/history.json with bare NaN. Like MLE-Dojo 667a8fd, its Sandbox
installs SIGTERM/SIGINT/SIGHUP handlers that chain the previous ones (so it
can only be constructed on the main thread, where signal.signal works) and
an atexit hook, and every env of a competition logs through one named
logger whose handlers each new env replaces. Nothing is executed or scored
for real:

  execute_code with code containing "SUBMIT" scores raw 0.5, position 0.75;
  code containing "NAN" scores raw NaN (position 0.0); code "SLEEP s" takes
  s seconds (a long code run);
  validate_code always succeeds; request_info returns a fixed overview.
"""

import atexit
import json
import logging
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path


class Sandbox:
    """MLE-Dojo's Sandbox registration of cleanup handlers."""

    def __init__(self, execution_timeout):
        self.execution_timeout = execution_timeout
        self.cleanups = 0
        atexit.register(self._cleanup_processes)
        self._original = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        for sig in self._original:
            signal.signal(sig, self._signal_handler)  # ValueError off the main thread

    def _signal_handler(self, signum, frame):
        self._cleanup_processes(force=True)
        original = self._original.get(signum)
        if callable(original):
            original(signum, frame)
        else:
            sys.exit(128 + signum)

    def _cleanup_processes(self, force=False):
        self.cleanups += 1


class KaggleEnvironment:
    @classmethod
    def make(cls, competition_name, output_dir, competition_registry=None, render_mode=None,
             gpu_device=None, gpu_memory_limit=None, cpu_time_limit=None, memory_limit=None,
             execution_timeout=None, custom_interface=None, custom_feedback_manager=None,
             score_mode="position"):
        return cls(competition_name=competition_name, output_dir=output_dir,
                   competition_registry=competition_registry, render_mode=render_mode,
                   gpu_device=gpu_device, gpu_memory_limit=gpu_memory_limit,
                   cpu_time_limit=cpu_time_limit, memory_limit=memory_limit,
                   execution_timeout=execution_timeout, interface=custom_interface,
                   feedback_manager=custom_feedback_manager, score_mode=score_mode)

    def __init__(self, competition_name, output_dir, competition_registry=None, render_mode=None,
                 gpu_device=None, gpu_memory_limit=None, cpu_time_limit=None, memory_limit=None,
                 execution_timeout=None, interface=None, feedback_manager=None, feedback_mode=None,
                 score_mode="position"):
        print("STAND-IN KaggleEnvironment: constructing %s (stdout pollution)" % competition_name)
        self.output_dir = Path(output_dir)
        self.history_dir = self.output_dir / "env_history"
        self.history_dir.mkdir(parents=True, exist_ok=True)
        self.history_file = self.history_dir / "history.json"
        self.competition_registry = competition_registry
        assert self.competition_registry.get(competition_name) is not None, "Competition not found in registry"
        self.competition_name = competition_name
        self.competition = competition_registry.get(competition_name)
        self.score_mode = score_mode
        # MLE-Dojo keeps the run timeout on its Sandbox object.
        self.sandbox = Sandbox(execution_timeout)
        self.logger = logging.getLogger("kaggle_env_%s" % competition_name)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.handlers = []
        handler = logging.FileHandler(self.output_dir / "env.log")
        self.logger.addHandler(handler)
        self.actions = ["request_info", "validate_code", "execute_code", "reset", "get_history"]
        self.closed = False
        self._reset_state()

    def _reset_state(self):
        self.total_reward = 0.0
        self.current_raw_score = 0.0
        self.current_position_score = 0.0
        self.best_code = None
        self.best_raw_score = float("nan")  # exercises NaN -> null
        self.best_position_score = None
        self.step_count = 0
        self._history = {"competition": self.competition_name, "actions": [], "total_reward": 0.0,
                         "best_code": None, "best_raw_score": float("nan"), "best_position_score": None,
                         "step_count": 0, "created_at": datetime.now().isoformat()}
        self._write_history()

    def _write_history(self):
        with open(self.history_file, "w") as f:
            json.dump(self._history, f, indent=2)  # bare NaN, like MLE-Dojo

    def _get_history_summary(self):
        acts = self._history["actions"]
        if not acts:
            return "No actions taken yet."
        return "Total Actions: %d, Last Action: %s" % (len(acts), acts[-1]["action"])

    def step(self, action, **kwargs):
        if self.closed:
            raise RuntimeError("STAND-IN env stepped after close")
        print("STAND-IN step %s (stdout pollution)" % action)
        os.write(1, b"STAND-IN raw fd-1 pollution\n")
        if action not in self.actions:
            raise ValueError("Invalid action: %s. Must be one of %s" % (action, self.actions))
        self.step_count += 1
        reward = 0.0
        self.logger.info("env %s step %s" % (self.output_dir.name, action))
        if action == "request_info":
            info_type = kwargs.get("info_type", "overview")
            if info_type not in ("overview", "all"):
                raise ValueError("Error in step for action 'request_info': Invalid info type: %s\n"
                                 "Details: Available info types: overview, all" % info_type)
            result = {"status": "SUCCESS", "data": {"overview": "STAND-IN overview of %s" % self.competition_name}}
        elif action in ("validate_code", "execute_code"):
            code = kwargs.get("code", "")
            if code.startswith("SLEEP "):
                time.sleep(float(code.split()[1]))
            if not code:
                raise ValueError("Error in step for action '%s': Code parameter is required for '%s' action" % (action, action))
            result = {"status": "SUCCESS", "execution": {"status": "SUCCESS", "output": "ran %d chars" % len(code),
                                                         "timeout": self.sandbox.execution_timeout}}
            if action == "execute_code" and ("SUBMIT" in code or "NAN" in code):
                raw = float("nan") if "NAN" in code else 0.5
                pos = 0.0 if "NAN" in code else 0.75
                result["submission"] = {"status": "SUCCESS", "raw_score": raw, "position_score": {"avg_score": pos}}
                self.current_raw_score, self.current_position_score = raw, pos
                reward = pos if self.score_mode == "position" else raw
                if raw == raw and (self.best_raw_score != self.best_raw_score or raw > self.best_raw_score):
                    self.best_raw_score, self.best_position_score, self.best_code = raw, pos, code
        elif action == "reset":
            self._reset_state()
            result = {"status": "SUCCESS"}
        else:  # get_history
            result = {"status": "SUCCESS", "data": self._history}
        feedback = {"base": {"feedback_status": result["status"],
                             "feedback": "STAND-IN feedback for %s" % action}}
        self.total_reward += reward
        self._history["actions"].append({"step": self.step_count, "action": action,
                                         "timestamp": datetime.now().isoformat(),
                                         "result": result, "feedback": feedback})
        self._history.update({"total_reward": self.total_reward, "step_count": self.step_count,
                              "best_code": self.best_code, "best_raw_score": self.best_raw_score,
                              "best_position_score": self.best_position_score})
        self._write_history()
        observation = {
            "action_status": result.get("status"),
            "feedback": feedback,
            "current_raw_score": self.current_raw_score,
            "current_position_score": self.current_position_score,
            "best_raw_score": self.best_raw_score,
            "best_position_score": self.best_position_score,
            "history_summary": self._get_history_summary(),
        }
        return observation, reward

    def reset(self, seed=None, options=None):
        self._reset_state()
        self.seed = seed
        return {"feedback": "Environment reset successfully", "total_reward": 0.0,
                "current_raw_score": 0.0, "current_position_score": 0.0,
                "history_summary": "History initialized"}, {}

    def close(self):
        self.closed = True
        for h in self.logger.handlers[:]:
            h.close()
            self.logger.removeHandler(h)
