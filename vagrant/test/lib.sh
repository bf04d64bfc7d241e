# Shared by the Vagrant lab scripts (sourced, not run). The lab's nodes and the OpenSSH
# client calls the test itself makes (provision uses its own SSH client, not this).

# Must match vagrant/Vagrantfile and inventories/vagrant.toml.
LAB_NODES=(node1 node2 node3)
declare -A LAB_ADDR=([node1]=192.168.56.11 [node2]=192.168.56.12 [node3]=192.168.56.13)

# Vagrant's insecure private key, where inventories/vagrant.toml expects it.
LAB_KEY="${LAB_KEY:-$HOME/.vagrant.d/insecure_private_key}"
# The test's own known_hosts (fresh VMs have fresh host keys every run).
LAB_KNOWN_HOSTS="${LAB_KNOWN_HOSTS:-/tmp/provision-vagrant-known_hosts}"

# lab_ssh NODE COMMAND...: run COMMAND as vagrant on NODE (by address, private network).
# With LAB_NETNS set, the ssh client runs inside that network namespace.
lab_ssh() {
  local node="$1"; shift
  ${LAB_NETNS:+ip netns exec "$LAB_NETNS"} ssh -i "$LAB_KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=30 \
      -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="$LAB_KNOWN_HOSTS" \
      -o LogLevel=ERROR -o ServerAliveInterval=15 \
      "vagrant@${LAB_ADDR[$node]}" "$@"
}

# now_s: seconds since the epoch (for step timings).
now_s() { date +%s; }
