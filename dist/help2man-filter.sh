#!/bin/sh
# help2man-filter.sh PROGRAM OPTION - runs PROGRAM OPTION for help2man
# (dist/CMakeLists.txt: help2man "sh help2man-filter.sh PROGRAM"). For
# --help, the usage block is put in the form help2man takes for the
# SYNOPSIS section: "usage: p ..." becomes "Usage: p ...", a further line
# of the block naming the program "  or: p ...", and a line wrapped under
# it (indented 7 or more, not naming the program) joins the line above.
# The block ends at the first other line; the rest passes unchanged. Any
# other option (--version) runs as it is.
prog=$1
shift
if [ "$*" != "--help" ]; then
    exec "$prog" "$@"
fi
"$prog" --help | awk -v name="${prog##*/}" '
    NR == 1 && /^usage: / { sub(/^usage: /, "Usage: "); line = $0; blk = 1; next }
    blk && $0 ~ ("^ +" name "( |$)") {
        print line; sub(/^ +/, ""); line = "  or: " $0; next
    }
    blk && /^       / { sub(/^ +/, " "); line = line $0; next }
    blk { print line; blk = 0 }
    { print }
    END { if (blk) print line }'
