"""Cumulative per-arm totals by day, from per-customer events (pure numpy: no Django).

A test's results over time are its analysis re-run on the data as it stood at the end of each day:
users assigned up to that day, and for each metric the customers' values counted up to that day.
For a customer whose value (e.g. revenue) grows on several days, the sum of squares (for the
variance) changes by ``new**2 - old**2`` on each of those days, so every day's totals come from one
pass over the events, not one pass per day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cumulative:
    """Per arm (rows) and day (columns), counted up to the end of the day."""

    users: np.ndarray  # users assigned
    new_users: np.ndarray  # users assigned on the day itself
    customers: np.ndarray  # customers with at least one counted event (converters, openers, ...)
    total: np.ndarray  # sum over customers of their counted value
    total_sq: np.ndarray  # sum over customers of (their counted value)^2


def cumulative(*, arms: int, days: int, new_users: np.ndarray, event_arm: np.ndarray, event_customer: np.ndarray,
               event_day: np.ndarray, event_value: np.ndarray) -> Cumulative:
    """``new_users[arm, day]``: assignments per arm and day. Events: one entry per counted event, with its
    arm, customer (any integer key), day index (0 = first day) and value (1 for a binary metric)."""
    new_users = np.asarray(new_users, dtype=np.int64).reshape(arms, days)
    first = np.zeros((arms, days), dtype=np.int64)
    add = np.zeros((arms, days))
    add_sq = np.zeros((arms, days))
    if len(event_arm):
        arm = np.asarray(event_arm, dtype=np.int64)
        customer = np.asarray(event_customer, dtype=np.int64)
        day = np.asarray(event_day, dtype=np.int64)
        value = np.asarray(event_value, dtype=np.float64)
        if day.min() < 0 or day.max() >= days or arm.min() < 0 or arm.max() >= arms:
            raise ValueError("an event's day or arm is outside the table")
        # One entry per (customer, day), in customer then day order.
        order = np.lexsort((day, customer))
        arm, customer, day, value = arm[order], customer[order], day[order], value[order]
        key_change = np.r_[True, (customer[1:] != customer[:-1]) | (day[1:] != day[:-1])]
        starts = np.flatnonzero(key_change)
        day_value = np.add.reduceat(value, starts)
        arm, customer, day = arm[starts], customer[starts], day[starts]
        new_customer = np.r_[True, customer[1:] != customer[:-1]]
        # Running value per customer: cumulative sum restarted at each new customer.
        running = np.cumsum(day_value)
        base = np.maximum.accumulate(np.where(new_customer, np.arange(len(running)), 0))
        offset = np.where(base > 0, running[base - 1], 0.0)
        running = running - offset
        previous = np.where(new_customer, 0.0, np.r_[0.0, running[:-1]])
        np.add.at(first, (arm, day), new_customer.astype(np.int64))
        np.add.at(add, (arm, day), day_value)
        np.add.at(add_sq, (arm, day), running**2 - previous**2)
    return Cumulative(users=np.cumsum(new_users, axis=1), new_users=new_users, customers=np.cumsum(first, axis=1),
                      total=np.cumsum(add, axis=1), total_sq=np.cumsum(add_sq, axis=1))
