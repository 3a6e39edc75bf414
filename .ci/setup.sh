# Sourced by .ci/run and examples/demo.sh: installs the OS packages the lab needs, then confluo into a virtual
# environment made with the machine's own Python. Debian 12+/Ubuntu 23.04+ refuse `pip install` into the system
# Python (PEP 668), so nothing is ever installed there. After `confluo_setup EXTRAS`, .venv/bin is first on PATH.

confluo_system_python() {
  # The distribution's Python, even where another one comes first on PATH: that is what a fresh machine has.
  local candidate
  for candidate in /usr/bin/python3 "$(command -v python3 2>/dev/null)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "confluo needs Python 3.11 or later as python3" >&2
  return 1
}

confluo_os_packages() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 0
  export DEBIAN_FRONTEND=noninteractive
  local python packages
  python=$(confluo_system_python)
  # The lab: a real sshd per node, sudo for the node users, real load balancers; venv for the virtual environment.
  packages=(openssh-server openssh-client sudo haproxy nginx apache2 socat "$@")
  "$python" -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

confluo_setup() {  # $1: the project's pip extras, e.g. "[test]"; further arguments: more apt packages
  local extras=${1:-}
  shift || true
  confluo_os_packages "$@"
  if [ ! -x .venv/bin/python ]; then
    "$(confluo_system_python)" -m venv .venv
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
  PATH="$PWD/.venv/bin:$PATH"
  export PATH
}
