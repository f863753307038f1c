# The security half of a production Consul server, in its own file as Consul's deployment
# guide splits it (consul.hcl, server.hcl, tls.hcl, acl.hcl in /etc/consul.d): TLS with
# verification both ways and auto-encrypt for clients, ACLs that deny by default, staged gossip
# encryption, HTTPS on 8501. mesh implements the `tls`, `auto_encrypt` and `acl` blocks but not
# staged gossip encryption (`encrypt_verify_*`) nor `addresses`, so it refuses those top-level
# keys here as "not supported yet" instead of running without the protection they ask for.

tls {
  defaults {
    ca_file         = "/etc/consul.d/certs/consul-agent-ca.pem"
    cert_file       = "/etc/consul.d/certs/us-east-1-server-consul-0.pem"
    key_file        = "/etc/consul.d/certs/us-east-1-server-consul-0-key.pem"
    verify_incoming = true
    verify_outgoing = true
  }
  internal_rpc {
    verify_server_hostname = true
  }
}

auto_encrypt {
  allow_tls = true
}

acl {
  enabled                  = true
  default_policy           = "deny"
  down_policy              = "extend-cache"
  enable_token_persistence = true
  tokens {
    initial_management = "8d2a0c1e-3f4b-4c5d-9e6f-7a8b9c0d1e2f"
    agent              = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9"
  }
}

encrypt_verify_incoming = true
encrypt_verify_outgoing = true

addresses {
  https = "0.0.0.0"
}
