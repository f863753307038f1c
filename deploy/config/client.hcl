# A mesh client agent: one on every node that runs services.
#
# install.sh --role client places this file at /etc/mesh/client.d/client.hcl (mode 0640,
# root:mesh, since it holds the gossip key); mesh-client.service reads every *.hcl and *.json
# file of that directory, in name order, so service definitions such as web.hcl go beside it.
# See docs/deploy.md for the whole walkthrough.
#
# Replace the placeholders before the first start. Until then the agent refuses to start, so
# a half-edited file cannot run unencrypted:
#
#   THIS_HOST_PRIVATE_IP       this node's address on the private network
#   SERVER_1_IP .. SERVER_3_IP the servers' private addresses
#   GOSSIP_KEY                 the servers' key (the output of `mesh-client keygen`)

datacenter = "dc1"
# The node name defaults to the hostname; set it if hostnames are not unique.
# node_name = "web-1"

data_dir = "/var/lib/mesh"

# Gossip (UDP 8301) listens on bind_addr; other agents reach this one at advertise_addr, and
# so do other nodes' sidecars (services registered without an address get this one).
bind_addr      = "THIS_HOST_PRIVATE_IP"
advertise_addr = "THIS_HOST_PRIVATE_IP"
# The agent API (8500) and DNS (8600): loopback, for this node's applications and sidecars.
client_addr = "127.0.0.1"

# Gossip addresses of any agents (port 8301 unless one is given): the servers are found
# through gossip, so one reachable address is enough; list all three for resilience.
retry_join = ["SERVER_1_IP", "SERVER_2_IP", "SERVER_3_IP"]

# The same key as the servers'. Only read on the first start: afterwards the keyring in
# data_dir wins (rotate with `mesh-client keyring`).
encrypt = "GOSSIP_KEY"

# Each agent decides intentions from its own copy: deny unless an intention allows.
default_intention_policy = "deny"

ports {
  http     = 8500
  dns      = 8600
  serf_lan = 8301
}

# recursors = ["10.0.0.53"]

log_level = "info"
log_json  = true
