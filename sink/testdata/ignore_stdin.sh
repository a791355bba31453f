#!/bin/sh
# Exits at once without reading stdin and writes a lot to stdout and
# stderr, which the sink must discard.
i=0
while [ $i -lt 200 ]; do
	echo "line $i of output that nobody reads"
	echo "line $i of errors that nobody reads" >&2
	i=$((i + 1))
done
exit 0
