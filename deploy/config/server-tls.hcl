# Agent TLS for a server: put it beside server.hcl in /etc/mesh/server.d (mode 0640,
# root:mesh). With it, server RPC (raft between servers, forwarding, client agents, TCP 8300)
# is mutual TLS and the HTTPS API listens on 8501 beside plain HTTP on 8500.
#
# Make the files once, on an operator's machine, and copy them to each server
# (docs/security.md, "TLS"):
#
#   mesh-client tls ca create                  -> mesh-agent-ca.pem, mesh-agent-ca-key.pem
#   mesh-client tls cert create -server        -> dc1-server-mesh-0.pem, dc1-server-mesh-0-key.pem
#
# Keep mesh-agent-ca-key.pem off the servers. A server's certificate names
# server.<datacenter>.<domain>, which verify_server_hostname checks: a stolen client
# certificate cannot pass for a server.
#
# Set the same RPC mode on every agent of the datacenter: mesh's server RPC is all TLS or all
# plaintext on an agent (verify_incoming or verify_outgoing turn it on).

tls {
  defaults {
    ca_file         = "/etc/mesh/tls/mesh-agent-ca.pem"
    cert_file       = "/etc/mesh/tls/dc1-server-mesh-0.pem"
    key_file        = "/etc/mesh/tls/dc1-server-mesh-0-key.pem"
    verify_incoming = true
    verify_outgoing = true
  }
  # Local tools reach the API without a client certificate; set true to require one there too.
  https {
    verify_incoming = false
  }
  internal_rpc {
    verify_server_hostname = true
  }
}

ports {
  https = 8501
}
