def forward(x, class_, n=2, *_rest_packed):
    _rest = list(_rest_packed)
    del _rest_packed
    add = x + weight
    del x
    unused = torch_relu(add)
    del unused
    getitem = add[:n]
    del n, add
    getitem_1, getitem_2 = getitem.split(1, dim=-1)
    del getitem
    scaled = test_golden_scaled(getitem_1, **{'a-b': -0.0, 'lambda': 2.5})
    del getitem_1
    sub = getitem_2 - class_
    return {'scaled': scaled, 'shifted': sub, 'consts': (0.0 - 2j, -1e309, -1), 'rest': _rest}
