/**
 * netkit: the namespace and netlink kit shared by the CNI daemon, the lab and
 * the isolator. See plugins/cni-calico-like/README.md for the API.
 */
export * from './ipv4.js';
export * from './netns.js';
export { Rtnl } from './rtnl.js';
export { RTN, RT_SCOPE, IFF_UP } from './rtnl-codec.js';
export * from './veth.js';
export * from './reaper.js';
