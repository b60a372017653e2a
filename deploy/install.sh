#!/usr/bin/env bash
# Installs the CLI under both of its names, `jobs` (typed in a shell with the
# integration loaded) and `jobsctl` (for scripts and CI: no shell shadows
# it), with one man page per subcommand, and optionally the shell
# integration for every user of the machine.
#
#   bash deploy/install.sh [--prefix DIR] [--binaries DIR] [--system-integration [--etc DIR]]
#
#   --prefix DIR           where to install: DIR/bin and DIR/share/man/man1
#                          (default /usr/local)
#   --binaries DIR         take `jobs` and `jobsctl` from DIR (such as
#                          target/debug) instead of building them in release
#   --system-integration   also load the integration in every login shell:
#                          ETC/profile.d/jobs.sh (bash; sh, such as dash,
#                          gets the plain function) and ETC/fish/conf.d/jobs.fish
#   --etc DIR              where ETC is (default /etc)
#
# zsh reads no /etc/profile.d on Debian: zsh users add
# `eval "$(env jobs shell-init zsh)"` to ~/.zshrc, after compinit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() {
    echo "install: error: $*" >&2
    exit 1
}

prefix=/usr/local
binaries=""
system_integration=false
etc=/etc
while (($# > 0)); do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --binaries) binaries="${2:?--binaries needs a directory}"; shift 2 ;;
        --system-integration) system_integration=true; shift ;;
        --etc) etc="${2:?--etc needs a directory}"; shift 2 ;;
        -h | --help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

if [[ -z "$binaries" ]]; then
    cargo build --release -p jobs-cli --bin jobs --bin jobsctl
    binaries=target/release
fi
for name in jobs jobsctl; do
    [[ -x "$binaries/$name" ]] || die "no executable $binaries/$name"
done

install -d "$prefix/bin" "$prefix/share/man/man1"
install -m 0755 "$binaries/jobs" "$binaries/jobsctl" "$prefix/bin/"
"$prefix/bin/jobsctl" man-pages "$prefix/share/man/man1" >/dev/null
echo "install: $prefix/bin/jobs, $prefix/bin/jobsctl and their man pages (man jobs-run)"

if $system_integration; then
    install -d "$etc/profile.d" "$etc/fish/conf.d"
    # Interactive shells only: a script gets no function and uses jobsctl.
    cat >"$etc/profile.d/jobs.sh" <<EOF
# The jobs CLI: \`jobs run\` reaches it, \`jobs\` alone stays job control.
case \$- in
    *i*)
        if [ -n "\${BASH_VERSION-}" ]; then
            eval "\$('$prefix/bin/jobsctl' shell-init bash)"
        elif [ -z "\${ZSH_VERSION-}" ]; then
            eval "\$('$prefix/bin/jobsctl' shell-init sh)"
        fi
        ;;
esac
EOF
    cat >"$etc/fish/conf.d/jobs.fish" <<EOF
# The jobs CLI: \`jobs run\` reaches it, \`jobs\` alone stays job control.
if status is-interactive
    '$prefix/bin/jobsctl' shell-init fish | source
end
EOF
    echo "install: the shell integration in $etc/profile.d/jobs.sh and $etc/fish/conf.d/jobs.fish"
else
    echo "install: in an interactive shell, load the integration so that \`jobs run\` reaches it:"
    echo "  bash: echo 'eval \"\$(env jobs shell-init bash)\"' >> ~/.bashrc"
    echo "  zsh:  echo 'eval \"\$(env jobs shell-init zsh)\"' >> ~/.zshrc   # after compinit"
    echo "  fish: echo 'env jobs shell-init fish | source' >> ~/.config/fish/config.fish"
fi
