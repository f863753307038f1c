# A single-server development agent, the file form of `consul agent -dev` from Consul's
# getting-started tutorials: a server that bootstraps alone, everything on one machine, the UI
# and Connect on, debug logging, script checks allowed, a throwaway data dir.

datacenter = "dc1"
node_name  = "laptop"
data_dir   = "/tmp/consul-dev"

server    = true
bootstrap = true

bind_addr      = "127.0.0.1"
advertise_addr = "127.0.0.1"
client_addr    = "0.0.0.0"

log_level = "DEBUG"

ui_config {
  enabled = true
}

connect {
  enabled = true
}

ports {
  grpc = 8502
}

performance {
  raft_multiplier = 1
}

enable_script_checks = true
disable_update_check = true

service {
  name = "counting"
  port = 9003
  connect {
    sidecar_service {}
  }
  check {
    id       = "counting-check"
    http     = "http://localhost:9003/health"
    method   = "GET"
    interval = "1s"
    timeout  = "1s"
  }
}

service {
  name = "dashboard"
  port = 9002
  connect {
    sidecar_service {
      proxy {
        upstreams = [
          {
            destination_name = "counting"
            local_bind_port  = 5000
          }
        ]
      }
    }
  }
}
