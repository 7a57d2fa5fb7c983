/* The guest's network settings that the kernel does not apply itself. */
#ifndef CAPSA_GUEST_NET_H
#define CAPSA_GUEST_NET_H

/* The kernel brought eth0 up from the ip= boot parameter (address, route)
 * and lists its DNS servers in /proc/net/pnp: this writes them to
 * /etc/resolv.conf in the new root, replacing the image's, as container
 * runtimes do. Without a network (no ip= given) it leaves the image's
 * file alone. Returns 0, or an errno value. */
int net_write_resolv_conf(void);

#endif
