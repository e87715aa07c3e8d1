import torch
submod_0_fn = __astgen_pieces__[0]
submod_1_fn = __astgen_pieces__[1]
submod_2_fn = __astgen_pieces__[2]
torch_clamp = torch.clamp
torch_nan_to_num = torch.nan_to_num
float64 = __astgen_consts__[0]
device_cpu = __astgen_consts__[1]
nan = __astgen_consts__[2]
torch_full_like = torch.full_like
examples__keywords = __astgen_consts__[3]

def forward(x, y):
    getitem, getitem_1 = submod_0_fn(x)
    del x
    submod_1 = submod_1_fn(getitem, y)
    del y, getitem
    submod_2 = submod_2_fn(submod_1, getitem_1)
    del getitem_1
    clamp = torch_clamp(submod_2, min=-1e309, max=1e309)
    del submod_2
    nan_to_num = torch_nan_to_num(clamp, nan=-0.0)
    del clamp
    to = nan_to_num.to(dtype=float64, device=device_cpu)
    del nan_to_num
    x_import_os_system_echo_pwned = to[:, 0:2]
    del to
    full_like = torch_full_like(x_import_os_system_echo_pwned, nan)
    del x_import_os_system_echo_pwned
    keywords = examples__keywords(full_like, **{'not-an-identifier': 1, 'class': 2})
    return (keywords, submod_1)
