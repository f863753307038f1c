//! SWIM gossip membership for every agent of a datacenter (being built; see issue 5).
