# shellcheck shell=bash
# The SD card's layout, shared by build-rootfs.sh (/etc/fstab and the kernel command line),
# build-image.sh (the partitions and their file systems) and check-image.sh. Sourced, not run.
#
# Partition 1: FAT32 (MBR type c), the Raspberry Pi firmware, kernel, initrd, config.txt and
# cmdline.txt; mounted at /boot/firmware. Partition 2: ext4 (type 83), the root file system,
# grown to the end of the card at first boot. Both start on an 8 MiB boundary (SD cards erase in
# blocks of up to 8 MiB; a partition that starts mid-block costs extra erases on every write).
# The system finds both by label, never by device name or UUID.

# shellcheck disable=SC2034  # used by the scripts that source this file
BOOT_LABEL=SHUTTERBOX       # FAT: at most 11 characters, upper case
ROOT_LABEL=shutterbox-root  # ext4: at most 16 characters
ALIGN_MIB=8
BOOT_START_MIB=8
