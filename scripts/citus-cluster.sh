#!/usr/bin/env bash
# Sourced by scripts/test and scripts/bench: builds Citus from the sources in ../shared/vendor
# (or $BILLRUN_CITUS_SOURCES) into the machine's PostgreSQL, and starts a throw-away Citus
# cluster, a coordinator and two workers, from the machine's own binaries.
#
# build_citus installs the Debian build dependencies when missing and the script runs as root,
# builds (under target/citus) and installs the extension into the PostgreSQL that pg_config
# names, once per machine: the installed extension gets a stamp naming the sources it was built
# from (citus.billrun-sources beside citus.so), and a later run, from any clone, finds it there.
# start_citus exports BILLRUN_TEST_PG (the coordinator's URL), BILLRUN_TEST_CITUS (the workers'
# host:port, comma-separated) and PGBIN,
# and stops the three servers on exit. The coordinator takes TLS with the self-signed X.509
# version 1 certificate that `CREATE EXTENSION citus` makes; BILLRUN_TEST_PG_CA names it.
# Needs scripts/pg-cluster.sh sourced first (find_pg_bin, run_as_postgres).

CITUS_VERSION=13.2.2
CITUS_SHA256=dd2453caec20a830e5e63f1def5c5a98cb6f57ae510407cdcd800916fcdab430
# Where the release's sources are published (the tag's archive), when they are not beside the
# clone in ../shared/vendor.
CITUS_URL=https://github.com/citusdata/citus/archive/refs/tags/v$CITUS_VERSION.tar.gz

citus_say() { printf '%s\n' "$*" >&2; }

build_citus() {
    local root sources tarball patchfile build pgconfig deps missing
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    sources=${BILLRUN_CITUS_SOURCES:-$root/../shared/vendor}
    tarball=$sources/citus-$CITUS_VERSION.tar.gz
    # PostgreSQL 15's recent minor releases declare have_createdb_privilege, which Citus 13.2.2
    # also defines: the patch renames Citus' own.
    patchfile=$root/scripts/citus/citus-$CITUS_VERSION-pg15-minor.patch
    if [ ! -f "$tarball" ]; then
        # A clone without the sources beside it: the release's archive, checked below.
        tarball=$root/target/citus/citus-$CITUS_VERSION.tar.gz
        if [ ! -f "$tarball" ]; then
            citus_say "Citus sources not found in $sources: downloading $CITUS_URL"
            mkdir -p "$root/target/citus"
            curl -fsSL --retry 3 -o "$tarball.part" "$CITUS_URL" && mv "$tarball.part" "$tarball" || {
                rm -f "$tarball.part"
                citus_say "could not download $CITUS_URL (set BILLRUN_CITUS_SOURCES to a directory holding citus-$CITUS_VERSION.tar.gz)"
                return 1
            }
        fi
    fi
    echo "$CITUS_SHA256  $tarball" | sha256sum -c --quiet - >&2 || {
        citus_say "$tarball does not have the expected sha256 $CITUS_SHA256"
        return 1
    }
    # Built and installed from these very sources before (by any clone on this machine): the
    # installed extension carries a stamp naming them, and nothing is built again.
    local ident libdir
    ident="$CITUS_SHA256 $(sha256sum <"$patchfile" | cut -d' ' -f1)"
    pgconfig=$(find_pg_bin)/pg_config
    [ -x "$pgconfig" ] || pgconfig=$(command -v pg_config) || pgconfig=""
    libdir=""
    [ -z "$pgconfig" ] || libdir=$("$pgconfig" --pkglibdir 2>/dev/null) || libdir=""
    if [ -n "$libdir" ] && [ -f "$libdir/citus.so" ] && [ "$(cat "$libdir/citus.billrun-sources" 2>/dev/null)" = "$ident" ]; then
        citus_say "Citus $CITUS_VERSION is installed from these sources (stamp in $libdir): not building it"
        return 0
    fi
    deps=(postgresql-server-dev-15 libkrb5-dev liblz4-dev libzstd-dev libcurl4-openssl-dev autoconf flex bison make gcc)
    missing=()
    for d in "${deps[@]}"; do
        dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q 'install ok installed' || missing+=("$d")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            citus_say "Citus build dependencies missing (${missing[*]}): installing them with apt-get"
            mkdir -p "$root/target/citus"
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
                >"$root/target/citus/apt.log" 2>&1 || {
                tail -n 20 "$root/target/citus/apt.log" >&2
                return 1
            }
        else
            citus_say "Citus build dependencies missing: ${missing[*]} (install them, or run as root)"
            return 1
        fi
    fi
    # pg_config comes with the build dependencies: look again when it was missing before them.
    [ -n "$pgconfig" ] || pgconfig=$(command -v pg_config) || {
        citus_say "pg_config not found (postgresql-server-dev-15)"
        return 1
    }
    build=$root/target/citus/citus-$CITUS_VERSION
    if [ ! -f "$build/.built" ]; then
        citus_say "building Citus $CITUS_VERSION into $build (about two minutes on two cores)"
        rm -rf "$build"
        mkdir -p "$build"
        tar -xzf "$tarball" -C "$build" --strip-components=1 &&
            (cd "$build" && patch -s -p1 <"$patchfile" &&
                ./configure -q PG_CONFIG="$pgconfig" >"$build/configure.log" 2>&1 &&
                make -s -j"$(nproc)" >"$build/make.log" 2>&1) || {
            citus_say "building Citus failed; the last lines of $build/*.log:"
            tail -n 20 "$build"/configure.log "$build"/make.log >&2 2>/dev/null
            return 1
        }
        touch "$build/.built"
    fi
    if [ ! -f "$("$pgconfig" --pkglibdir)/citus.so" ] || ! cmp -s "$build/src/backend/distributed/citus.so" "$("$pgconfig" --pkglibdir)/citus.so"; then
        (cd "$build" && make -s install >"$build/install.log" 2>&1) || {
            citus_say "installing Citus into $("$pgconfig" --pkglibdir) failed (run as root?):"
            tail -n 20 "$build/install.log" >&2
            return 1
        }
    fi
    echo "$ident" 2>/dev/null >"$("$pgconfig" --pkglibdir)/citus.billrun-sources" || true
}

# One Citus node: initdb as pg-cluster.sh does, with Citus preloaded, started on a free port.
# Clients reach the coordinator with a password (SCRAM); the workers trust connections from this
# machine, as workers on a private network trust their coordinator, so that the coordinator can
# reach them as any role a test makes.
citus_node() {
    local name=$1 port host_auth=scram-sha-256
    [ "$name" = coordinator ] || host_auth=trust
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${RUN_AS[@]}" "$PGBIN/initdb" -D "$CITUSTMP/$name" -U billrun --pwfile="$CITUSTMP/password" --auth-local=trust \
        --auth-host=$host_auth --encoding=UTF8 --no-locale >"$CITUSTMP/$name.initdb.log" 2>&1 || {
        cat "$CITUSTMP/$name.initdb.log" >&2
        return 1
    }
    # The nodes reach each other over TCP with the password, from the servers' own pgpass file.
    "${RUN_AS[@]}" env PGPASSFILE="$CITUSTMP/pgpass" "$PGBIN/pg_ctl" -D "$CITUSTMP/$name" \
        -l "$CITUSTMP/$name.log" -w -t 60 \
        -o "-p $port -k $CITUSTMP -c listen_addresses=127.0.0.1 -c shared_preload_libraries=citus -c fsync=${BILLRUN_PG_FSYNC:-off} -c timezone=America/Los_Angeles -c max_connections=300 -c max_worker_processes=64 -c citus.shard_count=${BILLRUN_CITUS_SHARDS:-4}" \
        start >&2 || {
        cat "$CITUSTMP/$name.log" >&2
        return 1
    }
    "${RUN_AS[@]}" "$PSQL" -q -X -v ON_ERROR_STOP=1 -h "$CITUSTMP" -p "$port" -U billrun -d postgres \
        -c 'CREATE EXTENSION citus' >&2 || return 1
    echo "$port"
}

start_citus() {
    PGBIN=$(find_pg_bin) || return 1
    PSQL=$PGBIN/psql
    [ -x "$PSQL" ] || PSQL=$(command -v psql) || return 1
    CITUSTMP=$(mktemp -d /tmp/billrun-citus.XXXXXX)
    run_as_postgres "$CITUSTMP"
    echo "not-a-secret" >"$CITUSTMP/password"
    echo "127.0.0.1:*:*:billrun:not-a-secret" >"$CITUSTMP/pgpass"
    chmod 644 "$CITUSTMP/password"
    chmod 600 "$CITUSTMP/pgpass"
    [ "$(id -u)" = 0 ] && chown postgres "$CITUSTMP/pgpass"
    trap stop_citus EXIT
    local coordinator w1 w2
    coordinator=$(citus_node coordinator) && w1=$(citus_node worker1) && w2=$(citus_node worker2) || return 1
    CITUS_PORTS="$coordinator $w1 $w2"
    citus_register_nodes postgres >&2 || return 1
    cp "$CITUSTMP/coordinator/server.crt" "$CITUSTMP/ca.crt"
    chmod 644 "$CITUSTMP/ca.crt"
    export BILLRUN_TEST_PG_CA="$CITUSTMP/ca.crt"
    export BILLRUN_TEST_PG="postgres://billrun:not-a-secret@127.0.0.1:$coordinator/postgres"
    export BILLRUN_TEST_CITUS=127.0.0.1:$w1,127.0.0.1:$w2
    PGPORT=$coordinator
}

# citus_database NAME: makes database NAME a Citus database as its administrator would (what
# tests/support/pg_database.rs does for each test): created on every node with the extension,
# the coordinator told its own address and its workers'. Prints its URL on the coordinator.
citus_database() {
    citus_each_node postgres "CREATE DATABASE $1" && citus_each_node "$1" 'CREATE EXTENSION citus' &&
        citus_register_nodes "$1" >/dev/null || return 1
    echo "${BILLRUN_TEST_PG%/*}/$1"
}

# citus_register_nodes DATABASE: tells DATABASE on the coordinator its own address and its
# workers' (CITUS_PORTS: the coordinator's port first).
citus_register_nodes() {
    local port coordinator=${CITUS_PORTS%% *}
    {
        echo "SELECT citus_set_coordinator_host('127.0.0.1', $coordinator);"
        for port in ${CITUS_PORTS#* }; do echo "SELECT citus_add_node('127.0.0.1', $port);"; done
    } | "${RUN_AS[@]}" "$PSQL" -q -X -v ON_ERROR_STOP=1 -h "$CITUSTMP" -p "$coordinator" -U billrun -d "$1"
}

# citus_each_node DATABASE SQL: runs SQL in DATABASE on every node, the coordinator first.
citus_each_node() {
    local port
    for port in $CITUS_PORTS; do
        "${RUN_AS[@]}" "$PSQL" -q -X -v ON_ERROR_STOP=1 -h "$CITUSTMP" -p "$port" -U billrun -d "$1" -c "$2" >&2 || return 1
    done
}

stop_citus() {
    local d
    for d in coordinator worker1 worker2; do
        [ -d "$CITUSTMP/$d" ] && "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$CITUSTMP/$d" -m immediate stop >/dev/null 2>&1
    done
    rm -rf "$CITUSTMP"
}
