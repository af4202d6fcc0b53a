import struct

import numpy as np

DT = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
def read_ct2(path):
    b = open(path, 'rb').read(); o = 0
    def u(fmt):
        nonlocal o; v = struct.unpack_from(fmt, b, o); o += struct.calcsize(fmt); return v[0]
    def s():
        nonlocal o; n = u('<H'); t = b[o:o+n-1].decode(); o += n; return t
    ver = u('<I'); name = s(); rev = u('<I'); n = u('<I'); out = {}
    for _ in range(n):
        k = s(); shape = [u('<I') for _ in range(u('<B'))]; dt = u('<B'); nb = u('<I')
        out[k] = np.frombuffer(b, DT[dt], nb // np.dtype(DT[dt]).itemsize, o).reshape(shape); o += nb
    for _ in range(u('<I')):
        a = s(); out[a] = out[s()]
    return ver, name, rev, out
if __name__ == '__main__':
    import sys
    ver, name, rev, w = read_ct2(sys.argv[1]); print(ver, name, rev, len(w))
    for k, v in w.items():
        if k.startswith('encoder') and ('layer_0/' in k or 'layer_' not in k): print(k, v.shape, v.dtype)
