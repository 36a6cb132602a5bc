# Installs what the tests need on a Debian machine and exports the environment they read.
# Sourced, not run: by ./test.sh (the README's test command) and by .ci/run. Idempotent, and
# quick when everything is already there (a few dpkg/command checks, no network).
# shellcheck shell=bash

# Builds are heavy on 2 cores: keep them outside the clone so a warm machine reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/reel-target}"
# Private runtime dir for Vulkan (silences a harmless lavapipe warning).
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

reel_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# System packages (Debian names). nasm: openh264's assembly (about 2.7x faster encoding); mesa-vulkan-drivers
# + libvulkan1: lavapipe, so the wgpu tests (pipeline/tests/post.rs) run on a real Vulkan
# adapter without a GPU; ffmpeg: ffprobe and ffmpeg check the MP4s (pipeline/tests/encode.rs).
reel_apt_need=()
command -v nasm >/dev/null || reel_apt_need+=(nasm)
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || reel_apt_need+=(mesa-vulkan-drivers)
dpkg -s libvulkan1 >/dev/null 2>&1 || reel_apt_need+=(libvulkan1)
{ command -v ffprobe >/dev/null && command -v ffmpeg >/dev/null; } || reel_apt_need+=(ffmpeg)
# pip, for the Python packages below.
python3 -m pip --version >/dev/null 2>&1 || reel_apt_need+=(python3-pip)
if [ ${#reel_apt_need[@]} -gt 0 ]; then
  reel_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive reel_sudo apt-get install -y -qq --no-install-recommends \
    "${reel_apt_need[@]}"
fi
unset reel_apt_need

# Python packages, each installed with pip into its own --target directory under /var/tmp
# (no root, no virtualenv), skipped when already there. Add further ones (e.g. test tools run
# by the suite) here, in the same form.

# NVRTC for kernels/tests/cuda_compile.rs, which compiles every CUDA kernel of the CUDA backend
# without a GPU (and fails, not skips, when libnvrtc cannot be loaded). cudarc opens libnvrtc
# by name through the dynamic loader, so its directory goes on LD_LIBRARY_PATH.
NVRTC_DIR="${NVRTC_DIR:-/var/tmp/reel-nvrtc}"
if [ ! -e "$NVRTC_DIR/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" ]; then
  python3 -m pip install --quiet --no-deps --target "$NVRTC_DIR" "nvidia-cuda-nvrtc-cu12==12.9.*"
fi
case ":${LD_LIBRARY_PATH:-}:" in
  *":$NVRTC_DIR/nvidia/cuda_nvrtc/lib:"*) ;;
  *) export LD_LIBRARY_PATH="$NVRTC_DIR/nvidia/cuda_nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac
