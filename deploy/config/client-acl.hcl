# ACLs for a client agent: put it beside client.hcl in /etc/mesh/client.d (mode 0640,
# root:mesh: it holds a token).
#
#   CLIENT_TOKEN   this agent's default token: it answers DNS and the calls it forwards for
#                  requests that carry no token, and (with no agent token) carries its
#                  anti-entropy writes. Give it a node identity for this node, service
#                  identities for its services, and a policy that reads what DNS should show,
#                  for example
#                    service_prefix "" { policy = "read" }
#                    node_prefix ""    { policy = "read" }
#
# The client checks the tokens of requests to its own endpoints with grants the servers
# resolve (cached 30 s); what it forwards is checked by the servers.

acl {
  enabled        = true
  default_policy = "deny"
  tokens {
    default = "CLIENT_TOKEN"
  }
}
