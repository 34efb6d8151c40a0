# Kubernetes through CRI: containerd's CRI plugin with runr as its runtime
# (runtime_type io.containerd.runc.v2, BinaryName runr; or runr's native shim,
# runtime_type io.containerd.runr.v2, in shim.sh), driven over gRPC by cri.py as the
# kubelet would drive it. Sourced by run.sh; defines cri_suite, and cri_setup and
# cri_client for the shim suite.

# Where the CRI suite's containerd lives.
CRI_DIR=$WORK/cri

# cri_setup [RUNTIME_TYPE]: a containerd in $CRI_DIR running pods on runr, through the
# runtime type given (default: the Go shim with runr as its BinaryName).
cri_setup() {
  local dir=$CRI_DIR
  CRI_RUNTIME=$(runtime_for "$ENGINE")
  containerd_start "$dir" "$CRI_RUNTIME" "${1:-io.containerd.runc.v2}" || return 1
  # Kubernetes' images live in containerd's k8s.io namespace; no registry is reachable, so
  # the pod sandbox image is ours too.
  ctr -a "$dir/containerd.sock" -n k8s.io images import "$IMAGE_TAR" >/dev/null
  ctr -a "$dir/containerd.sock" -n k8s.io images import "$PAUSE_IMAGE_TAR" >/dev/null
  mkdir -p "$dir/py"
  protoc -I "$ENGINES_DIR" --python_out="$dir/py" "$ENGINES_DIR/cri.proto"
}

cri_client() {
  /usr/bin/python3 "$ENGINES_DIR/cri.py" "$CRI_DIR/py" "$CRI_DIR/containerd.sock" "docker.io/library/$IMAGE" "$1"
}

cri_teardown() {
  containerd_stop "$CRI_DIR/containerd.sock" k8s.io
}

cri_suite() {
  ENGINE=cri
  CRI_DIR=$WORK/cri
  if ! cri_setup; then
    FAILED+=("cri: containerd did not start")
    return
  fi
  scenario "pod: sandbox, container, exec, stats, update, stop, remove" cri_client pod
  scenario "create error reaches the CRI client" cri_client error
  cri_teardown
}
