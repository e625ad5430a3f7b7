"""Sites over ranks: split communicators, one site group per communicator.

With ``size <= sites`` every rank is its own group and owns a contiguous block of sites;
with more ranks than sites (mean-field on several ranks) the ranks are shared out over
the sites and each site's mesh is distributed over its group's ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SiteLayout", "site_layout"]


@dataclass
class SiteLayout:
    """Which sites this rank's group owns, and the group communicator."""

    groups: int
    color: int
    sites: np.ndarray
    group_comm: object


def site_layout(comm, n_sites: int) -> SiteLayout:
    """Split ``comm`` into ``min(size, n_sites)`` groups (collective over ``comm``)."""
    groups = min(comm.size, n_sites)
    color = comm.rank * groups // comm.size
    sites = np.array_split(np.arange(n_sites), groups)[color]
    return SiteLayout(groups, color, sites, comm.Split(color, comm.rank))
