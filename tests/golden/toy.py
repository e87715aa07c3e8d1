submod_0_fn = __astgen_pieces__[0]
submod_1_fn = __astgen_pieces__[1]
submod_2_fn = __astgen_pieces__[2]

def forward(x, y):
    getitem, getitem_1 = submod_0_fn(x)
    del x
    submod_1 = submod_1_fn(getitem, y)
    del y, getitem
    submod_2 = submod_2_fn(submod_1, getitem_1)
    return (submod_2, submod_1)
