#!/usr/bin/env bash
# Installs mesh on a Debian or Ubuntu host with systemd. Run as root; safe to run again (an
# upgrade is the same command with new binaries). See docs/deploy.md.
#
#   deploy/install.sh [--role server|client] [--dry-run] [BINARY_DIR]
#
# BINARY_DIR holds mesh-server, mesh-client and mesh-sidecar (default ./target/release).
# What it does:
#   - installs the three binaries to /usr/local/bin (0755, root:root)
#   - creates the system group and user `mesh` (no login, no home)
#   - creates /etc/mesh, /etc/mesh/server.d and /etc/mesh/client.d (0750, root:mesh) and
#     /var/lib/mesh (0750, mesh:mesh)
#   - installs mesh-server.service, mesh-client.service and mesh-sidecar@.service to
#     /etc/systemd/system (0644) and runs `systemctl daemon-reload`
#   - installs the example configs to /usr/local/share/mesh/examples (0644)
#   - with --role, places the example server.hcl or client.hcl in /etc/mesh/ROLE.d (0640,
#     root:mesh) unless that directory already holds a *.hcl or *.json file: an existing
#     configuration is never overwritten
# It enables and starts nothing: fill in the configuration first (the next steps are printed).
# --dry-run prints the commands it would run and changes nothing (it need not run as root).

set -euo pipefail

PROGRAM=${0##*/}
DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BINARIES=(mesh-server mesh-client mesh-sidecar)
UNITS=(mesh-server.service mesh-client.service mesh-sidecar@.service)
EXAMPLES=(server.hcl client.hcl web.hcl db.hcl server-tls.hcl client-tls.hcl server-acl.hcl client-acl.hcl)
BIN_DEST=/usr/local/bin
UNIT_DEST=/etc/systemd/system
EXAMPLE_DEST=/usr/local/share/mesh/examples
CONFIG_ROOT=/etc/mesh
DATA_DIR=/var/lib/mesh
MESH_USER=mesh
MESH_GROUP=mesh

usage() {
    cat <<EOF
Usage: $PROGRAM [--role server|client] [--dry-run] [BINARY_DIR]

Installs the mesh binaries from BINARY_DIR (default ./target/release), the mesh user and
group, /etc/mesh, /var/lib/mesh and the systemd units. With --role, also places the example
configuration for a server or a client agent, unless one exists.

Options:
  --role server|client  place deploy/config/ROLE.hcl in /etc/mesh/ROLE.d if it holds no config
  --dry-run             print what would be done, change nothing
  -h, --help            this text
EOF
}

die() {
    echo "$PROGRAM: $*" >&2
    exit 1
}

ROLE=""
DRY_RUN=0
BIN_DIR=""
while [ $# -gt 0 ]; do
    case $1 in
    --role)
        [ $# -ge 2 ] || die "--role needs a value: server or client"
        ROLE=$2
        shift 2
        ;;
    --role=*)
        ROLE=${1#--role=}
        shift
        ;;
    --dry-run | -n)
        DRY_RUN=1
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    --)
        shift
        break
        ;;
    -*)
        usage >&2
        die "unknown option: $1"
        ;;
    *)
        [ -z "$BIN_DIR" ] || die "only one BINARY_DIR, got $BIN_DIR and $1"
        BIN_DIR=$1
        shift
        ;;
    esac
done
if [ $# -gt 0 ]; then
    if [ -n "$BIN_DIR" ] || [ $# -gt 1 ]; then
        die "only one BINARY_DIR"
    fi
    BIN_DIR=$1
fi
BIN_DIR=${BIN_DIR:-./target/release}

case $ROLE in
"" | server | client) ;;
*) die "--role must be server or client, not \"$ROLE\"" ;;
esac

# Runs a command, or only prints it with --dry-run.
run() {
    local shown
    shown=$(printf '%q ' "$@")
    if [ "$DRY_RUN" -eq 1 ]; then
        echo "would run: ${shown% }"
    else
        echo "+ ${shown% }"
        "$@"
    fi
}

note() {
    echo "  $*"
}

# ---- checks ---------------------------------------------------------------------------------

if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or try --dry-run)"
fi
command -v systemctl >/dev/null 2>&1 || [ "$DRY_RUN" -eq 1 ] ||
    die "systemctl not found: this installer is for hosts with systemd"
for tool in install getent groupadd useradd cmp stat; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done

[ -d "$BIN_DIR" ] || die "no binary directory $BIN_DIR (build with: cargo build --release -p mesh-server -p mesh-client -p mesh-sidecar)"
for binary in "${BINARIES[@]}"; do
    if [ ! -f "$BIN_DIR/$binary" ] || [ ! -x "$BIN_DIR/$binary" ]; then
        die "$BIN_DIR/$binary is missing or not executable (build with: cargo build --release -p mesh-server -p mesh-client -p mesh-sidecar)"
    fi
done
for unit in "${UNITS[@]}"; do
    [ -f "$DEPLOY_DIR/systemd/$unit" ] || die "$DEPLOY_DIR/systemd/$unit is missing"
done
for example in "${EXAMPLES[@]}"; do
    [ -f "$DEPLOY_DIR/config/$example" ] || die "$DEPLOY_DIR/config/$example is missing"
done

if [ "$DRY_RUN" -eq 1 ]; then
    echo "Dry run: nothing is changed."
fi

# ---- user and group -------------------------------------------------------------------------

echo "== user and group"
if getent group "$MESH_GROUP" >/dev/null; then
    note "group $MESH_GROUP exists"
else
    run groupadd --system "$MESH_GROUP"
fi
if getent passwd "$MESH_USER" >/dev/null; then
    note "user $MESH_USER exists"
else
    run useradd --system --gid "$MESH_GROUP" --home-dir "$DATA_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "mesh service mesh" "$MESH_USER"
fi

# ---- binaries -------------------------------------------------------------------------------

# Installs SRC as DEST with MODE and owner OWNER:GROUP unless DEST is already the same bytes;
# the mode and owner are set either way.
install_file() {
    local src=$1 dest=$2 mode=$3 owner=$4 group=$5
    if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
        if [ "$(stat -c '%a %U %G' "$dest")" = "${mode#0} $owner $group" ]; then
            note "$dest is up to date"
        else
            run chmod "$mode" "$dest"
            run chown "$owner:$group" "$dest"
        fi
    else
        run install -m "$mode" -o "$owner" -g "$group" "$src" "$dest"
    fi
}

echo "== binaries"
run install -d -m 0755 -o root -g root "$BIN_DEST"
UPGRADED=()
for binary in "${BINARIES[@]}"; do
    if [ -f "$BIN_DEST/$binary" ] && ! cmp -s "$BIN_DIR/$binary" "$BIN_DEST/$binary"; then
        UPGRADED+=("$binary")
    fi
    install_file "$BIN_DIR/$binary" "$BIN_DEST/$binary" 0755 root root
done

# ---- directories ----------------------------------------------------------------------------

echo "== directories"
run install -d -m 0750 -o root -g "$MESH_GROUP" "$CONFIG_ROOT" "$CONFIG_ROOT/server.d" "$CONFIG_ROOT/client.d"
run install -d -m 0750 -o "$MESH_USER" -g "$MESH_GROUP" "$DATA_DIR"

# ---- systemd units --------------------------------------------------------------------------

echo "== systemd units"
for unit in "${UNITS[@]}"; do
    install_file "$DEPLOY_DIR/systemd/$unit" "$UNIT_DEST/$unit" 0644 root root
done
if [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
else
    note "systemd is not running here: run 'systemctl daemon-reload' once it is"
fi

# ---- examples and configuration -------------------------------------------------------------

echo "== example configuration"
run install -d -m 0755 -o root -g root "$EXAMPLE_DEST"
for example in "${EXAMPLES[@]}"; do
    install_file "$DEPLOY_DIR/config/$example" "$EXAMPLE_DEST/$example" 0644 root root
done

# Whether a config dir already holds configuration (what the agents would read).
has_config() {
    local file
    for file in "$1"/*.hcl "$1"/*.json; do
        [ -e "$file" ] && return 0
    done
    return 1
}

CONFIG_FILE=""
if [ -n "$ROLE" ]; then
    config_dir=$CONFIG_ROOT/$ROLE.d
    if has_config "$config_dir"; then
        note "$config_dir already holds configuration: left alone"
    else
        CONFIG_FILE=$config_dir/$ROLE.hcl
        # 0640: the file will hold the gossip key.
        run install -m 0640 -o root -g "$MESH_GROUP" "$DEPLOY_DIR/config/$ROLE.hcl" "$CONFIG_FILE"
    fi
fi

# ---- next steps -----------------------------------------------------------------------------

case $ROLE in
server) unit=mesh-server ;;
client) unit=mesh-client ;;
*) unit="mesh-client (mesh-server on a server)" ;;
esac
echo
if [ "$DRY_RUN" -eq 1 ]; then
    echo "Dry run done: nothing was changed. After a real run, the next steps are:"
else
    echo "Installed. Next steps:"
fi
if [ -z "$ROLE" ]; then
    echo "  - Pick a role: re-run with --role server (the three servers) or --role client"
    echo "    (every other node), or copy $EXAMPLE_DEST/server.hcl or client.hcl into"
    echo "    $CONFIG_ROOT/server.d or $CONFIG_ROOT/client.d yourself (0640 root:$MESH_GROUP)."
else
    echo "  - Edit $CONFIG_ROOT/$ROLE.d/$ROLE.hcl: replace THIS_HOST_PRIVATE_IP, SERVER_1_IP,"
    echo "    SERVER_2_IP, SERVER_3_IP and GOSSIP_KEY (one key for the whole datacenter, from"
    echo "    'mesh-client keygen'). mesh refuses to start while the address or the key is"
    echo "    still a placeholder."
    if [ -n "$CONFIG_FILE" ] && [ "$DRY_RUN" -eq 0 ]; then
        echo "    Placeholders left in $CONFIG_FILE:"
        grep -nE 'THIS_HOST_PRIVATE_IP|SERVER_[0-9]_IP|GOSSIP_KEY' "$CONFIG_FILE" |
            grep -v '^[0-9]*:#' | sed 's/^/      /' || true
    fi
    echo "  - Start it: systemctl enable --now $unit"
    echo "    Then check: journalctl -u $unit -f, mesh-client members,"
    echo "    mesh-client operator raft list-peers"
fi
echo "  - Services with a sidecar: put a definition such as $EXAMPLE_DEST/web.hcl in the"
echo "    agent's config dir, 'systemctl reload $unit', then"
echo "    'systemctl enable --now mesh-sidecar@web'."
if [ "${#UPGRADED[@]}" -gt 0 ]; then
    echo "  - Upgraded: ${UPGRADED[*]}. Running processes keep the old binary until restarted:"
    echo "    restart servers one at a time, the leader last (docs/operations.md)."
fi
echo "  - Full walkthrough: docs/deploy.md"
