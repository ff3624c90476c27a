"""The outbox: side effects owed to users, recorded in the same transaction as the change
that owes them (tasks.py), then run by a worker with retries and backoff until they succeed
(worker.py).

A service outage (its 5xx answers, timeouts, refused connections) is not the task's fault: it
is not counted against max_attempts, and every task of that service waits, persisted on the
rows and held in the worker, until a probe (the oldest due task, in id order) gets through, so
nothing is given up during an outage shorter than OUTAGE_GIVE_UP and each incident's steps
still run in the order they were made."""

from bot.outbox.tasks import SETUP, TASKS, PermanentError, Waiting, enqueue, enqueue_many
from bot.outbox.worker import Outbox, current_task

__all__ = ["SETUP", "TASKS", "Outbox", "PermanentError", "Waiting", "current_task", "enqueue", "enqueue_many"]
