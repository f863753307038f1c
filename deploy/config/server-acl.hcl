# ACLs and encryption at rest for a server: put it beside server.hcl in /etc/mesh/server.d
# (mode 0640, root:mesh: it holds the management token). The same file on every server.
#
#   MANAGEMENT_TOKEN   a UUID you generate once (`uuidgen`) and keep in a password manager:
#                      the leader creates a management token with this secret, and
#                      PUT /v1/acl/bootstrap is then closed. Until it is replaced, mesh-server
#                      refuses to start (it must be a UUID).
#
# Then create policies and tokens for everything else (docs/security.md, "ACLs"): a token
# per client agent (its default token, for DNS and what it forwards), per sidecar (a service
# identity) and per operator. Never hand out the management token.

acl {
  enabled        = true
  default_policy = "deny"
  tokens {
    initial_management = "MANAGEMENT_TOKEN"
  }
}

# The CA's private keys are sealed in the raft log, snapshots and archives with the first key
# of this file (one base64 32-byte key per line; `head -c 32 /dev/urandom | base64`). Keep it
# outside data_dir, mode 0600 mesh:mesh, and back it up apart from snapshots: a snapshot is
# useless without it. docs/operations.md explains rotation.
data_key_file = "/etc/mesh/data.key"
