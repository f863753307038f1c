# A mesh server: one of the three servers of a datacenter.
#
# install.sh --role server places this file at /etc/mesh/server.d/server.hcl (mode 0640,
# root:mesh, since it holds the gossip key); mesh-server.service reads every *.hcl and *.json
# file of that directory, in name order. See docs/deploy.md for the whole walkthrough.
#
# Replace the placeholders before the first start. Until then mesh-server refuses to start
# with an "invalid value" error for bind_addr or encrypt, so a half-edited file cannot run
# unencrypted:
#
#   THIS_HOST_PRIVATE_IP       this server's address on the private network
#   SERVER_1_IP .. SERVER_3_IP the three servers' private addresses: the same list on every
#                              server (an agent skips its own address)
#   GOSSIP_KEY                 the output of `mesh-client keygen`, run once: the same key on
#                              every server and client agent
#
# Unknown keys are errors, never ignored. Agent TLS (server RPC and HTTPS) is in
# server-tls.hcl beside this file: see "TLS" in docs/security.md.

datacenter = "dc1"
# The node name defaults to the hostname; set it if hostnames are not unique.
# node_name = "server-1"

server           = true
bootstrap_expect = 3
data_dir         = "/var/lib/mesh"

# Gossip (UDP 8301) and server RPC (TCP 8300) listen on bind_addr; other agents reach this
# one at advertise_addr. Both on the private network, never 0.0.0.0 on a host with a public
# interface.
bind_addr      = "THIS_HOST_PRIVATE_IP"
advertise_addr = "THIS_HOST_PRIVATE_IP"
# The HTTP API (8500) and DNS (8600) listen here. Loopback unless ACLs are on
# (server-acl.hcl); remote callers should use the HTTPS port (server-tls.hcl).
client_addr = "127.0.0.1"

# Gossip addresses (port 8301 unless one is given). Any one reachable agent is enough; the
# servers find each other through gossip and bootstrap once bootstrap_expect of them meet.
retry_join = ["SERVER_1_IP", "SERVER_2_IP", "SERVER_3_IP"]

# AES-256-GCM gossip encryption. The key is only read on the first start: afterwards the
# keyring in data_dir wins, so rotate with `mesh-client keyring`, not by editing this line.
encrypt = "GOSSIP_KEY"

# The built-in CA and service identities (on by default; stated here for clarity).
connect {
  enabled = true
}

# No intention matches: deny. Every service-to-service call needs an `allow` intention
# (`mesh-client intention create -allow web db`). Set the same on every agent.
default_intention_policy = "deny"

# The defaults, stated so that the firewall rules in docs/deploy.md have something to match.
ports {
  http     = 8500
  dns      = 8600
  server   = 8300
  serf_lan = 8301
}

# Names outside the `mesh` domain go to these resolvers (ip or ip:port); without any, the
# agent refuses them.
# recursors = ["10.0.0.53"]

# Raft timing: 1 is the fastest failover (Consul's advice for dedicated hosts); the default 5
# tolerates slow or shared VMs.
performance {
  raft_multiplier = 5
}

log_level = "info"
log_json  = true
