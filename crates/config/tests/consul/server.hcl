# A production Consul server, one of three in a datacenter, as Consul's deployment guide and
# "Deploy Consul on VMs" tutorial lay one out: dedicated host, private network, gossip
# encryption, Connect on, Prometheus metrics, autopilot tuned for a three-server cluster.
# ACLs deny by default, with the bootstrap management token; TLS and the other ACL settings are
# left out: mesh refuses them (see server-security.hcl).

datacenter = "us-east-1"
node_name  = "consul-server-1"
data_dir   = "/opt/consul/data"

server           = true
bootstrap_expect = 3
retry_join       = ["10.0.1.11", "10.0.1.12", "10.0.1.13"]

bind_addr      = "10.0.1.11"
advertise_addr = "10.0.1.11"
client_addr    = "0.0.0.0"

encrypt = "rMHNdfkAVGLRqzrrobElXoUL+aNNqGwP7gkypEPcE2Q="

log_level = "INFO"
log_json  = true

ui_config {
  enabled = true
}

ports {
  http     = 8500
  dns      = 8600
  server   = 8300
  serf_lan = 8301
  grpc     = 8502
  https    = -1
}

performance {
  raft_multiplier = 1
}

connect {
  enabled = true
}

telemetry {
  prometheus_retention_time = "60s"
  disable_hostname          = true
}

recursors = ["10.0.0.2", "1.1.1.1:53"]

dns_config {
  node_ttl         = "30s"
  only_passing     = true
  enable_truncate  = true
  udp_answer_limit = 5
  service_ttl = {
    "*" = "10s"
  }
}

limits {
  http_max_conns_per_client = 400
}

acl {
  enabled        = true
  default_policy = "deny"
  tokens {
    initial_management = "8d2a0c1e-3f4b-4c5d-9e6f-7a8b9c0d1e2f"
  }
}

autopilot {
  cleanup_dead_servers      = true
  last_contact_threshold    = "500ms"
  max_trailing_logs         = 500
  min_quorum                = 3
  server_stabilization_time = "15s"
}

# A server that leaves shrinks the quorum: stop on signals, never leave.
leave_on_terminate      = false
skip_leave_on_interrupt = true
rejoin_after_leave      = true

disable_update_check = true
