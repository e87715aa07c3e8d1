import torch
weight = __astgen_consts__[0]
torch_relu = torch.relu
test_golden_scaled = __astgen_consts__[1]

def forward(x, class_, n=2, *rest_packed):
    rest = list(rest_packed)
    del rest_packed
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
    return {'scaled': scaled, 'shifted': sub, 'consts': (0.0 - 2j, -1e309, -1), 'rest': rest}
