#!/bin/sh
# Starts a child that outlives any sane timeout, records both pids in
# $OUT_DIR, and waits: the exec sink's timeout must kill both.
sleep 300 &
echo $! > "$OUT_DIR/child.pid.tmp" && mv "$OUT_DIR/child.pid.tmp" "$OUT_DIR/child.pid"
echo $$ > "$OUT_DIR/parent.pid.tmp" && mv "$OUT_DIR/parent.pid.tmp" "$OUT_DIR/parent.pid"
wait
