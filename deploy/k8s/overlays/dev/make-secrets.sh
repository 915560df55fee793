#!/bin/sh
# Write secrets.env and deps.env for the dev overlay with fresh random values (openssl).
# Refuses to overwrite existing files: a new MySQL password would not match the data volume.
#   usage: ./make-secrets.sh [DIR]   (default: this script's directory)
set -eu
dir=${1:-$(dirname "$0")}
for f in secrets.env deps.env; do
    if [ -e "$dir/$f" ]; then
        echo "$dir/$f exists; delete it first to make new values" >&2
        exit 1
    fi
done
hex() { openssl rand -hex "$1"; }
mysql_root=$(hex 24)
mysql_password=$(hex 24)
redis_password=$(hex 24)
umask 077
cat > "$dir/deps.env" <<END
MYSQL_ROOT_PASSWORD=$mysql_root
MYSQL_PASSWORD=$mysql_password
REDIS_PASSWORD=$redis_password
END
cat > "$dir/secrets.env" <<END
CADENZA_DATABASE_URL=mysql://cadenza:$mysql_password@cadenza-mysql:3306/cadenza
CADENZA_BUS_URL=kafka://cadenza-kafka:9092
CADENZA_REDIS_URL=redis://:$redis_password@cadenza-redis:6379/0
CADENZA_CACHE_URL=
CADENZA_ADMIN_PASSWORD=$(hex 16)
CADENZA_TOKEN_SECRET=$(hex 32)
CADENZA_SECRETS_KEY=$(openssl rand -base64 32 | tr '+/' '-_')
CADENZA_METRICS_TOKEN=$(hex 32)
CADENZA_MCP_PROXY_TOKEN=$(hex 32)
END
echo "wrote $dir/secrets.env and $dir/deps.env (mode 0600); the admin password is CADENZA_ADMIN_PASSWORD in secrets.env" >&2
