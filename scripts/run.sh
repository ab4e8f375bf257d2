#!/usr/bin/env bash
# `make run` serves through this script: it starts each long-running process of Lifeboat, and stops
# them all together on Ctrl-C / SIGTERM, or as soon as one of them exits.
set -uo pipefail
BIN=${BIN:-.venv/bin}
PORT=${PORT:-5000}
pids=()

start() {  # start NAME COMMAND...: run one process in the background and remember it
  local name=$1; shift
  "$@" &
  pids+=($!)
  echo "started $name (pid $!)"
}

stop() {
  trap - INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait
}
trap 'stop; exit 0' INT TERM

# A production WSGI server, bound to loopback only; put a TLS proxy in front to expose it.
start web "$BIN/gunicorn" --bind "127.0.0.1:$PORT" --workers "${WEB_WORKERS:-2}" --threads "${WEB_THREADS:-4}" \
  --preload --access-logfile - --graceful-timeout 10 "app:create_app()"
# The notifier worker sends what the outbox holds (SMS, email); without Twilio/SMTP settings it logs them.
start notifier "$BIN/flask" --app app notifier run

echo "Serving on http://127.0.0.1:$PORT  (operator console: http://127.0.0.1:$PORT/ops/sign-in)  Ctrl-C stops."
wait -n            # one process ended (crashed or was stopped): stop the rest too
status=$?
stop
exit "$status"
