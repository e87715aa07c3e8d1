def test_placeholder_imports():
    import vllm.compilation.codegen as c

    assert callable(c.compile_execution_fn)
