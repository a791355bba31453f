#!/bin/sh
# Writes what the exec sink handed over into $OUT_DIR, then exits with
# $EXIT_CODE (default 0).
cat > "$OUT_DIR/stdin"
env > "$OUT_DIR/env"
exit "${EXIT_CODE:-0}"
