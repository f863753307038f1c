# A mesh server in a three-server datacenter. Copy to /etc/mesh.d/server.hcl on each server host
# and set node_name, bind_addr and retry_join for that host (retry_join lists the other two).
datacenter       = "dc1"
node_name        = "server-1"
data_dir         = "/var/lib/mesh"
server           = true
bootstrap_expect = 3
bind_addr        = "10.0.0.1"
client_addr      = "127.0.0.1"
retry_join       = ["10.0.0.2", "10.0.0.3"]
log_level        = "info"
log_json         = true

ports {
  http   = 8500
  server = 8300
}
