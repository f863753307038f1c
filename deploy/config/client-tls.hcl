# Agent TLS for a client agent: put it beside client.hcl in /etc/mesh/client.d (mode 0640,
# root:mesh). The agent dials the servers' RPC port over TLS, checks that they are the
# datacenter's servers (server.<datacenter>.<domain>) and presents its own certificate, which
# the servers require.
#
#   mesh-client tls cert create -client        -> dc1-client-mesh-0.pem, dc1-client-mesh-0-key.pem
#
# Or, instead of cert_file and key_file, an auto_encrypt block with tls set to true: the agent
# then asks the servers for its certificate at start (the servers need auto_encrypt's
# allow_tls and the CA key; see "auto_encrypt" in docs/security.md).

tls {
  defaults {
    ca_file         = "/etc/mesh/tls/mesh-agent-ca.pem"
    cert_file       = "/etc/mesh/tls/dc1-client-mesh-0.pem"
    key_file        = "/etc/mesh/tls/dc1-client-mesh-0-key.pem"
    verify_outgoing = true
  }
  internal_rpc {
    verify_server_hostname = true
  }
}
