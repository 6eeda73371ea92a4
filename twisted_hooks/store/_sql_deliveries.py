"""
The delivery role of the SQL stores (:class:`~twisted_hooks.store.sql.SQLDeliveryStore`):
deliveries and their attempts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_hooks.interfaces import IDeliveryStore
from twisted_hooks.store._rows import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    LIST_IDS,
    Cursor,
    SQLEngine,
    attempt_from_row,
    attempt_values,
    chunks,
    delivery_from_row,
    delivery_from_values,
    delivery_values,
)
from twisted_hooks.store.schema import CLAIMABLE
from twisted_hooks.webhooks._deliveries import (
    DEAD,
    DELIVERED,
    RETRYING,
    STATUSES,
    Attempt,
    Delivery,
    DeliveryNotFound,
    DeliveryStats,
    DeliveryUpdate,
    log_order,
    log_stale_write,
)

__all__ = ["SQLDeliveryStore"]


# --- deliveries ---------------------------------------------------------------------------


@attrs.define
class _Enqueue:
    """One :meth:`SQLDeliveryStore.enqueue` call waiting for its transaction."""

    ids: list[str]
    rows: list[tuple[Any, ...]]
    idempotency_key: str | None
    now: float
    done: Deferred[bool]


@implementer(IDeliveryStore)
class SQLDeliveryStore:
    """
    The delivery role of an :class:`SQLStore`: deliveries and their attempts.

    Nothing is held in memory: :meth:`claim` reads at most ``limit`` rows, so a backlog of
    any size stays in the database.
    """

    durable = True

    def __init__(self, store: SQLEngine) -> None:
        self._store = store
        # Group commit: enqueues made while one transaction of them runs wait here, and
        # the next transaction stores them all (each in a savepoint of its own).
        self._queued: list[_Enqueue] = []
        self._enqueuing = False

    def enqueue(
        self, deliveries: Sequence[Delivery], idempotency_key: str | None = None
    ) -> Deferred[bool]:
        """Store new deliveries in one transaction, committed when the Deferred fires
        ``True``; with a known ``idempotency_key``, store nothing and fire ``False``.
        A delivery id already stored (or given twice) fails with :class:`ValueError` and
        stores nothing.

        Enqueues made while an earlier one is being written share the next transaction
        (a group commit), each in a savepoint of its own: one failing stores nothing of
        its own and leaves the others alone, and each Deferred fires once that
        transaction is committed."""
        store = self._store
        job = _Enqueue(
            [delivery.id for delivery in deliveries],
            [DELIVERY_COLUMNS.params(delivery_values(delivery)) for delivery in deliveries],
            idempotency_key,
            store.reactor.seconds(),
            Deferred(),
        )
        self._queued.append(job)
        if not self._enqueuing:
            self._write_queued()
        return job.done

    def _write_queued(self) -> None:
        jobs, self._queued = self._queued, []
        if not jobs:
            self._enqueuing = False
            return
        self._enqueuing = True
        written = self._store.run(True, self._enqueue_jobs, jobs)
        written.addBoth(self._written, jobs)

    def _written(self, outcome: list[bool | Failure] | Failure, jobs: list[_Enqueue]) -> None:
        # The next group starts before these Deferreds fire: their callbacks may enqueue.
        self._write_queued()
        for index, job in enumerate(jobs):
            result = outcome if isinstance(outcome, Failure) else outcome[index]
            if isinstance(result, Failure):
                job.done.errback(result)
            else:
                job.done.callback(result)

    def _enqueue_jobs(self, cursor: Cursor, jobs: list[_Enqueue]) -> list[bool | Failure]:
        if len(jobs) == 1:
            return [self._enqueue_one(cursor, jobs[0])]
        results: list[bool | Failure] = []
        for job in jobs:
            cursor.execute("SAVEPOINT enqueue")
            try:
                results.append(self._enqueue_one(cursor, job))
            except Exception:
                results.append(Failure())
                cursor.execute("ROLLBACK TO SAVEPOINT enqueue")
            cursor.execute("RELEASE SAVEPOINT enqueue")
        return results

    def _enqueue_one(self, cursor: Cursor, job: _Enqueue) -> bool:
        store = self._store
        rows = job.rows
        ids = job.ids
        if job.idempotency_key is not None:
            cursor.execute(
                store.sql(
                    "INSERT INTO idempotency_keys (key, created_at) VALUES (?, ?)"
                    " ON CONFLICT (key) DO NOTHING"
                ),
                (job.idempotency_key, job.now),
            )
            if cursor.rowcount != 1:
                return False
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"delivery {twice[0]!r} is given twice")
        for chunk in chunks(ids):
            cursor.execute(
                store.sql(
                    f"SELECT id FROM deliveries WHERE id IN ({', '.join('?' * len(chunk))})"
                ),
                chunk,
            )
            row = cursor.fetchone()
            if row is not None:
                (stored,) = row
                raise ValueError(f"delivery {stored!r} is already stored")
        if rows:
            cursor.executemany(
                store.sql(
                    f"INSERT INTO deliveries ({DELIVERY_COLUMNS.listed()})"
                    f" VALUES ({DELIVERY_COLUMNS.markers()})"
                ),
                rows,
            )
        return True

    def claim(self, now: float, limit: int, lease: float) -> Deferred[Sequence[Delivery]]:
        """Lease up to ``limit`` due deliveries (expired leases included) until
        ``now + lease``, earliest due first, in one statement (SQLite: one write
        transaction)."""
        if limit < 1:
            return succeed([])

        def claim(cursor: Cursor) -> Sequence[Delivery]:
            rows = self._store.claim_rows(cursor, now, limit, now + lease)
            return [delivery_from_values(row) for row in rows]

        return self._store.run(True, claim)

    def record(self, updates: Sequence[DeliveryUpdate]) -> Deferred[Sequence[DeliveryUpdate]]:
        """Write attempt outcomes in one transaction: each attempt is upserted (by delivery
        and number); each delivery not already delivered or dead takes its new status.
        An update carrying a ``claim_token`` other than the delivery's current one is
        dropped whole (attempt included) and logged; the Deferred fires those updates."""
        store = self._store
        for update in updates:
            if update.status not in (DELIVERED, RETRYING, DEAD):
                return fail(
                    ValueError(
                        f"update of {update.delivery_id!r}: the status must be delivered,"
                        f" retrying or dead, got {update.status!r}"
                    )
                )
            if update.status == RETRYING and update.next_attempt_at is None:
                return fail(ValueError(f"update of {update.delivery_id!r} retries without a time"))
        ids = sorted({u.delivery_id for u in updates})
        attempt_sql = store.sql(ATTEMPT_COLUMNS.upsert())
        update_sql = store.sql(
            "UPDATE deliveries SET status = ?,"
            f" attempts = {store.greatest}(attempts, ?),"
            " last_error = ?, finished_at = ?,"
            " next_attempt_at = COALESCE(?, next_attempt_at),"
            " due_at = COALESCE(?, next_attempt_at)"
            " WHERE id = ? AND status NOT IN ('delivered', 'dead')"
        )

        def record(cursor: Cursor) -> list[tuple[DeliveryUpdate, int | None]]:
            tokens: dict[str, int | None] = {}
            for chunk in chunks(ids):
                cursor.execute(
                    store.sql(
                        "SELECT id, claim_token FROM deliveries"
                        f" WHERE id IN ({', '.join('?' * len(chunk))})"
                        " ORDER BY id" + store.lock_rows
                    ),
                    chunk,
                )
                for delivery_id, claim_token in cursor.fetchall():
                    tokens[delivery_id] = claim_token
            mine: list[DeliveryUpdate] = []
            stale: list[tuple[DeliveryUpdate, int | None]] = []
            for u in updates:
                if u.delivery_id not in tokens:
                    continue
                current = tokens[u.delivery_id]
                if u.claim_token is not None and u.claim_token != current:
                    stale.append((u, current))
                else:
                    mine.append(u)
            if not mine:
                return stale
            cursor.executemany(
                attempt_sql, [ATTEMPT_COLUMNS.params(attempt_values(u.attempt)) for u in mine]
            )
            changes = []
            for u in mine:
                attempt = u.attempt
                ended = u.status in (DELIVERED, DEAD)
                changes.append(
                    (
                        u.status,
                        attempt.number,
                        attempt.error_message,
                        attempt.started_at + attempt.duration if ended else None,
                        u.next_attempt_at,
                        u.next_attempt_at,
                        u.delivery_id,
                    )
                )
            cursor.executemany(update_sql, changes)
            return stale

        return store.run(True, record).addCallback(self._dropped)

    @staticmethod
    def _dropped(stale: list[tuple[DeliveryUpdate, int | None]]) -> list[DeliveryUpdate]:
        for update, current in stale:
            log_stale_write(
                update.delivery_id,
                f"outcome of attempt {update.attempt.number}",
                update.claim_token,
                current,
            )
        return [update for update, _ in stale]

    def release(
        self, delivery_id: str, due_at: float, claim_token: int | None = None
    ) -> Deferred[None]:
        """Give back a claimed delivery, unattempted, due again at ``due_at`` (a delivery not
        in flight is left alone, and so is one claimed again since the claim
        ``claim_token`` names: that stale release is logged); fails with
        :class:`~twisted_hooks.webhooks.delivery.DeliveryNotFound` for an unknown id."""
        store = self._store
        sql = (
            "UPDATE deliveries SET"
            " status = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'pending' END,"
            " next_attempt_at = ?, due_at = ? WHERE id = ? AND status = 'in_flight'"
        )
        params: tuple[Any, ...] = (due_at, due_at, delivery_id)
        if claim_token is not None:
            sql += " AND claim_token = ?"
            params += (claim_token,)

        def release(cursor: Cursor) -> int | None:
            """Fire the delivery's current token when the release was stale, else the
            one given."""
            cursor.execute(store.sql(sql), params)
            if cursor.rowcount:
                return claim_token
            cursor.execute(
                store.sql("SELECT claim_token FROM deliveries WHERE id = ?"), (delivery_id,)
            )
            row = cursor.fetchone()
            if row is None:
                raise DeliveryNotFound(delivery_id)
            (current,) = row
            return claim_token if claim_token is None else current

        def released(current: int | None) -> None:
            if current != claim_token:
                log_stale_write(delivery_id, "release", claim_token, current)

        return store.run(True, release).addCallback(released)

    def _exists(self, cursor: Cursor, delivery_id: str) -> str:
        cursor.execute(
            self._store.sql("SELECT status FROM deliveries WHERE id = ?"), (delivery_id,)
        )
        row = cursor.fetchone()
        if row is None:
            raise DeliveryNotFound(delivery_id)
        (status,) = row
        return str(status)

    @staticmethod
    def _earliest(cursor: Cursor) -> float | None:
        row = cursor.fetchone()
        if row is None:
            return None
        (earliest,) = row
        return None if earliest is None else float(earliest)

    def next_due(self) -> Deferred[float | None]:
        """The earliest due time of a claimable delivery, or ``None``."""

        def earliest(cursor: Cursor) -> float | None:
            cursor.execute(
                f"SELECT MIN(due_at) FROM deliveries{self._store.due_index} WHERE {CLAIMABLE}"
            )
            return self._earliest(cursor)

        return self._store.run(False, earliest)

    def get(self, delivery_id: str) -> Deferred[Delivery]:
        """A delivery by id; fails with
        :class:`~twisted_hooks.webhooks.delivery.DeliveryNotFound`."""

        def get(cursor: Cursor) -> Delivery:
            cursor.execute(
                self._store.sql(
                    f"SELECT {DELIVERY_COLUMNS.listed()} FROM deliveries WHERE id = ?"
                ),
                (delivery_id,),
            )
            row = cursor.fetchone()
            if row is None:
                raise DeliveryNotFound(delivery_id)
            return delivery_from_row(row)

        return self._store.run(False, get)

    def attempts(self, delivery_id: str) -> Deferred[Sequence[Attempt]]:
        """The attempts of a delivery, by number; fails with
        :class:`~twisted_hooks.webhooks.delivery.DeliveryNotFound`."""

        def attempts(cursor: Cursor) -> Sequence[Attempt]:
            self._exists(cursor, delivery_id)
            cursor.execute(
                self._store.sql(
                    f"SELECT {ATTEMPT_COLUMNS.listed()} FROM attempts WHERE delivery_id = ?"
                    " ORDER BY number"
                ),
                (delivery_id,),
            )
            return [attempt_from_row(row) for row in cursor.fetchall()]

        return self._store.run(False, attempts)

    def list(
        self,
        status: str | None = None,
        subscriber_id: str | None = None,
        limit: int = 100,
        since: float | None = None,
        *,
        subscriber_ids: Iterable[str] | None = None,
        after: tuple[float, str] | None = None,
    ) -> Deferred[Sequence[Delivery]]:
        """Deliveries in the delivery log's order (newest first, by creation time then id:
        :func:`~twisted_hooks.webhooks.delivery.log_order`), filtered
        by status, subscriber id, any of ``subscriber_ids`` and ``created_at >= since``;
        only those after the ``(created_at, id)`` position ``after`` in that order; at most
        ``limit``. One transaction; the ids are asked 500 at a time."""
        if status is not None and status not in STATUSES:
            return fail(ValueError(f"unknown status {status!r}; use one of {STATUSES!r}"))
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("status = ?", status),
            ("subscriber_id = ?", subscriber_id),
            ("created_at >= ?", since),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if after is not None:
            clauses.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params.extend((after[0], after[0], after[1]))
        chunks: list[list[str]] = [[]]
        if subscriber_ids is not None:
            ids = sorted(set(subscriber_ids))
            if not ids:
                return succeed([])
            chunks = [ids[i : i + LIST_IDS] for i in range(0, len(ids), LIST_IDS)]
        count = max(0, limit)

        def select(cursor: Cursor) -> Sequence[Delivery]:
            found: list[Delivery] = []
            for chunk in chunks:
                where = [*clauses]
                if chunk:
                    where.append(f"subscriber_id IN ({', '.join('?' * len(chunk))})")
                text = f" WHERE {' AND '.join(where)}" if where else ""
                sql = self._store.sql(
                    f"SELECT {DELIVERY_COLUMNS.listed()} FROM deliveries{text}"
                    " ORDER BY created_at DESC, id DESC LIMIT ?"
                )
                cursor.execute(sql, [*params, *chunk, count])
                found.extend(delivery_from_row(row) for row in cursor.fetchall())
            if len(chunks) > 1:
                found.sort(key=log_order, reverse=True)
            return found[:count]

        return self._store.run(False, select)

    _REVIVE = (
        "UPDATE deliveries SET"
        " status = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'pending' END,"
        " next_attempt_at = ?, due_at = ?, finished_at = NULL"
    )

    def retry(self, delivery_id: str, now: float) -> Deferred[Delivery]:
        """Make a dead delivery pending (or retrying) again, due at ``now``; fails with
        :class:`~twisted_hooks.webhooks.delivery.DeliveryNotFound` or, when it is not dead,
        :class:`ValueError`."""
        store = self._store

        def retry(cursor: Cursor) -> Delivery:
            cursor.execute(
                store.sql(
                    f"{self._REVIVE} WHERE id = ? AND status = 'dead'"
                    f" RETURNING {DELIVERY_COLUMNS.listed()}"
                ),
                (now, now, delivery_id),
            )
            row = cursor.fetchone()
            if row is None:
                status = self._exists(cursor, delivery_id)
                raise ValueError(f"delivery {delivery_id!r} is {status}; only dead ones retry")
            return delivery_from_row(row)

        return store.run(True, retry)

    def recover(self, subscriber_id: str, since: float, now: float) -> Deferred[int]:
        """Make every dead delivery of a subscriber created at or after ``since`` due again
        at ``now``; fires how many."""
        store = self._store

        def recover(cursor: Cursor) -> int:
            cursor.execute(
                store.sql(
                    f"{self._REVIVE} WHERE status = 'dead' AND subscriber_id = ?"
                    " AND created_at >= ?"
                ),
                (now, now, subscriber_id, since),
            )
            return max(0, cursor.rowcount)

        return store.run(True, recover)

    def prune(self, before: float) -> Deferred[int]:
        """Delete the deliveries delivered before ``before``, and their attempts; fires how
        many deliveries. Dead ones are kept."""
        store = self._store

        def prune(cursor: Cursor) -> int:
            cursor.execute(
                store.sql(
                    "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries"
                    " WHERE status = 'delivered' AND finished_at < ?)"
                ),
                (before,),
            )
            cursor.execute(
                store.sql("DELETE FROM deliveries WHERE status = 'delivered' AND finished_at < ?"),
                (before,),
            )
            return max(0, cursor.rowcount)

        return store.run(True, prune)

    def prune_keys(self, before: float) -> Deferred[int]:
        """Forget the idempotency keys stored before ``before`` (a publication repeated with
        such a key is accepted again); fires how many."""
        store = self._store

        def prune(cursor: Cursor) -> int:
            cursor.execute(
                store.sql("DELETE FROM idempotency_keys WHERE created_at < ?"), (before,)
            )
            return max(0, cursor.rowcount)

        return store.run(True, prune)

    def stats(self, now: float) -> Deferred[DeliveryStats]:
        """Counts for every status and the age of the oldest due delivery."""

        def stats(cursor: Cursor) -> DeliveryStats:
            counts = dict.fromkeys(STATUSES, 0)
            cursor.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
            for status, count in cursor.fetchall():
                counts[status] = int(count)
            cursor.execute(
                f"SELECT MIN(due_at) FROM deliveries{self._store.due_index} WHERE {CLAIMABLE}"
            )
            earliest = self._earliest(cursor)
            age = now - earliest if earliest is not None and earliest <= now else None
            return DeliveryStats(counts, age)

        return self._store.run(False, stats)
