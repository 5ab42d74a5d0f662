#!/usr/bin/env bash
# Sourced by scripts/test and scripts/bench: starts and stops a throw-away PostgreSQL cluster
# from the machine's own binaries (initdb/pg_ctl in a temporary directory, on a free port).
# start_postgres exports BILLRUN_TEST_PG (a server URL) and PGBIN, and stops the cluster on exit.
# With BILLRUN_PG_SSL=on the server also takes TLS, with a self-signed X.509 version 1
# certificate for CN=localhost (what Citus makes when its extension is created), and
# BILLRUN_TEST_PG_CA names that certificate, to be trusted as its own authority.

find_pg_bin() {
    local d
    for d in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")" /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

# Sets RUN_AS to what runs a server's commands: as root, the postgres user (made if missing),
# which then owns directory $1, since initdb refuses to run as root; otherwise nothing.
run_as_postgres() {
    RUN_AS=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
        chown postgres "$1"
        RUN_AS=(runuser -u postgres --)
    fi
}

start_postgres() {
    PGBIN=$(find_pg_bin) || {
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            printf '%s\n' "PostgreSQL not found: installing it with apt-get" >&2
            apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 || true
        fi
        PGBIN=$(find_pg_bin) || return 1
    }
    PGTMP=$(mktemp -d /tmp/billrun-pg.XXXXXX)
    run_as_postgres "$PGTMP"
    PGPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # Over TCP a password is required and checked (SCRAM), as on a real server, so that the
    # tests can see a wrong one refused; the socket, which only this script uses, trusts.
    echo "not-a-secret" >"$PGTMP/password"
    chmod 644 "$PGTMP/password"
    "${RUN_AS[@]}" "$PGBIN/initdb" -D "$PGTMP/data" -U billrun --pwfile="$PGTMP/password" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --no-locale >"$PGTMP/initdb.log" 2>&1 || {
        cat "$PGTMP/initdb.log" >&2
        return 1
    }
    local ssl=""
    if [ "${BILLRUN_PG_SSL:-off}" = on ]; then
        # `openssl x509 -req` without extensions writes a version 1 certificate.
        openssl req -new -newkey rsa:2048 -nodes -keyout "$PGTMP/data/server.key" -subj /CN=localhost \
            -out "$PGTMP/server.csr" >/dev/null 2>&1 &&
            openssl x509 -req -in "$PGTMP/server.csr" -signkey "$PGTMP/data/server.key" -days 3650 \
                -out "$PGTMP/data/server.crt" >/dev/null 2>&1 || {
            echo "could not make the test server's certificate with openssl" >&2
            return 1
        }
        chmod 600 "$PGTMP/data/server.key"
        [ "$(id -u)" = 0 ] && chown postgres "$PGTMP/data/server.key" "$PGTMP/data/server.crt"
        cp "$PGTMP/data/server.crt" "$PGTMP/ca.crt"
        chmod 644 "$PGTMP/ca.crt"
        export BILLRUN_TEST_PG_CA="$PGTMP/ca.crt"
        ssl="-c ssl=on"
    fi
    # The server's TimeZone is deliberately not the billing zone: month bounds must not depend on it.
    "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w -t 60 \
        -o "-p $PGPORT -k $PGTMP -c listen_addresses=127.0.0.1 -c fsync=${BILLRUN_PG_FSYNC:-off} -c timezone=America/Los_Angeles -c max_connections=300 $ssl" \
        start >&2 || {
        cat "$PGTMP/server.log" >&2
        return 1
    }
    trap stop_postgres EXIT
    # The password is checked; the tests also check it is never shown.
    export BILLRUN_TEST_PG="postgres://billrun:not-a-secret@127.0.0.1:$PGPORT/postgres"
}

stop_postgres() {
    "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PGTMP"
}

