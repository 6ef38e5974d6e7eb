"""Training configuration: presets hold the official values, every field is a flag."""

import dataclasses

import pytest

from sdcl_toolkit import SDCLRecipe
from sdcl_toolkit.engine import TrainConfig, build_parser, parse_config, sysu_config_from_argv
from sdcl_toolkit.recipe import RECIPE_FIELDS


def test_sysu_preset_is_the_official_recipe():
    c = TrainConfig.sysu()
    assert (c.epochs, c.cmlabel, c.iters_stage1, c.iters_stage2) == (50, 30, 200, 100)
    assert (c.batch_ir, c.batch_rgb, c.num_instances) == (128, 128, 16)
    assert (c.lr, c.weight_decay, c.sgd_momentum, c.step_size, c.gamma) == (
        3.5e-4,
        5e-4,
        0.9,
        20,
        0.1,
    )
    assert (c.eps, c.min_samples, c.k1, c.k2, c.stage2_rgb_k1) == (0.6, 4, 30, 6, 15)
    assert (c.memory_momentum, c.instance_momentum, c.temp) == (0.1, 0.9, 0.05)
    assert (c.cra_topk, c.cra_smooth_k, c.cnl_threshold) == (20, 5, 0.9)
    assert (c.homogeneous_start, c.heterogeneous_start) == (0, 10)
    assert (c.aug_jitter, c.aug_hue, c.aug_padding, c.aug_erasing) == (0.5, 0.5, 10, 0.5)
    assert c.model == "vit_base" and c.pretrain_steps == 0


def test_regdb_preset():
    c = TrainConfig.regdb()
    assert (c.epochs, c.cmlabel, c.iters_stage1, c.iters_stage2, c.eps) == (30, 20, 50, 50, 0.3)
    assert c.first_epoch_memory_momentum == 0.99 and c.memory_momentum == 0.1
    assert c.stage2_rgb_k1 == 30 and c.homogeneous_start == 1 and c.cra_topk == 10
    assert c.recipe() == SDCLRecipe.regdb()


@pytest.mark.parametrize("name", ["sysu", "regdb"])
def test_presets_read_every_shared_value_from_the_recipe(name):
    config = getattr(TrainConfig, name)()
    recipe = SDCLRecipe.for_dataset(name)
    shared = [
        f
        for f in RECIPE_FIELDS
        if hasattr(config, f) and f not in ("height", "width", "drop_path_rate", "checkpoint_grid")
    ]
    assert len(shared) >= 45
    for field in shared:
        assert getattr(config, field) == getattr(recipe, field), field
    assert config.recipe() == recipe and config.recipe().name == name


def test_a_changed_flag_reaches_the_recipe():
    recipe = TrainConfig.sysu(k1=20, cnl_temp=0.1).recipe()
    assert (recipe.k1, recipe.cnl_temp, recipe.name) == (20, 0.1, "sysu+modified")
    assert recipe.source("k1") == "modified"
    assert recipe.source("k2").startswith("cluster_contrast_vit_sysu.py")


def test_official_presets_refuse_a_silent_random_initialisation():
    with pytest.raises(ValueError, match="vit_base_ics_cfs_lup.pth"):
        TrainConfig.sysu(data_dir="/data").validate()
    with pytest.raises(ValueError, match="--pretrained none"):
        parse_config(TrainConfig.sysu(), ["--data-dir", "/data"])
    explicit = parse_config(TrainConfig.sysu(), ["--data-dir", "/data", "--pretrained", "none"])
    assert explicit.random_init and explicit.pretrained_path is None
    given = parse_config(TrainConfig.regdb(), ["--data-dir", "/d", "--pretrained", "w.pth"])
    assert not given.random_init and given.pretrained_path == "w.pth"
    assert TrainConfig.demo().random_init  # the demo pretrains on generated identities


def test_nan_and_negative_settings_are_refused_before_training():
    with pytest.raises(ValueError) as error:
        TrainConfig.demo(
            cnl_threshold=float("nan"), gamma=-1.0, lr=float("nan"), cra_topk=0, stage2_rgb_k1=0
        ).validate()
    message = str(error.value)
    for name in ("cnl_threshold", "gamma", "lr", "cra_topk", "stage2_rgb_k1"):
        assert name in message


def test_schedule_helpers():
    c = TrainConfig.sysu()
    assert c.stage(29) == 1 and c.stage(30) == 2
    assert c.iterations(0) == 200 and c.iterations(30) == 100


def test_every_field_is_a_flag_with_the_preset_default():
    defaults = TrainConfig.regdb()
    args = build_parser(defaults).parse_args([])
    for field in dataclasses.fields(TrainConfig):
        assert getattr(args, field.name) == getattr(defaults, field.name), field.name


def test_parse_config_overrides_and_optional_none():
    c = parse_config(
        TrainConfig.sysu(),
        [
            "--eps",
            "0.5",
            "--no-use-cameras",
            "--pretrained",
            "x.pth",
            "--first-epoch-memory-momentum",
            "none",
            "--data-dir",
            "/data",
        ],
    )
    assert c.eps == 0.5 and c.use_cameras is False and c.pretrained == "x.pth"
    assert c.first_epoch_memory_momentum is None


def test_threads_flag():
    assert sysu_config_from_argv([]).threads is None  # torch's default
    assert sysu_config_from_argv(["--demo", "--threads", "1"]).threads == 1
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        sysu_config_from_argv(["--demo", "--threads", "0"])


def test_train_sysu_runs_the_demo_only_when_chosen():
    demo = sysu_config_from_argv([])  # make demo: no arguments at all
    assert demo.model == "tiny" and demo.generated_data and demo.data_dir is None
    assert demo == sysu_config_from_argv(["--demo"])
    assert sysu_config_from_argv(["--demo", "--epochs", "3"]).epochs == 3
    official = sysu_config_from_argv(["--data-dir", "/data/SYSU-MM01", "--pretrained", "w.pth"])
    assert official.model == "vit_base" and official.epochs == 50
    assert not official.generated_data
    assert (
        sysu_config_from_argv(["--data-dir", "/d", "--epochs", "3", "--pretrained", "none"]).epochs
        == 3
    )
    # a real preset without --data-dir is an error, never a silent switch to generated data
    with pytest.raises(ValueError, match="no --data-dir.*--demo"):
        sysu_config_from_argv(["--pretrained", "w.pth"])
    with pytest.raises(ValueError, match="no --data-dir"):
        TrainConfig.sysu(pretrained="none").validate()
    with pytest.raises(ValueError, match="exclude each other"):
        sysu_config_from_argv(["--demo", "--data-dir", "/d"])


def test_invalid_settings_are_listed():
    with pytest.raises(ValueError) as error:
        TrainConfig.sysu(eps=2.0, batch_ir=100, dataset="market").validate()
    message = str(error.value)
    assert "eps must lie in (0, 1]" in message
    assert "batch_ir=100 must be a multiple of num_instances=16" in message
    assert "dataset must be 'sysu' or 'regdb'" in message
    with pytest.raises(ValueError, match="RegDB needs --data-dir"):
        TrainConfig.regdb().validate()


def test_json_round_trip():
    c = TrainConfig.demo(seed=7)
    assert TrainConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    ("flags", "name"),
    [
        (["--cra-topk", "0"], "cra_topk"),  # used from stage 2 only
        (["--stage2-rgb-k1", "0"], "stage2_rgb_k1"),  # used from stage 2 only
        (["--cnl-threshold", "nan"], "cnl_threshold"),  # would zero the CNL losses
        (["--gamma", "-1"], "gamma"),  # would give a negative learning rate
        (["--lr", "nan"], "lr"),
        (["--temp", "nan"], "temp"),
        (["--cnl-temp", "0"], "cnl_temp"),
        (["--lambda-shallow", "nan"], "lambda_shallow"),
        (["--homogeneous-deep", "nan"], "homogeneous_deep"),
        (["--stage2-heterogeneous", "-1"], "stage2_heterogeneous"),
        (["--memory-momentum", "1.5"], "memory_momentum"),
        (["--checkpoint-grid", "16"], "checkpoint_grid"),
        (["--stem", "conv"], "stem"),
        (["--dist-timeout", "0"], "dist_timeout"),
        (["--pretrain-lr", "nan"], "pretrain_lr"),
        (["--synthetic-nuisance", "nan"], "synthetic_nuisance"),
        (["--drop-path-rate", "nan"], "drop_path_rate"),
        (["--height", "0"], "height"),
        (["--workers", "-1"], "workers"),
        (["--resume", "--overwrite"], "exclude each other"),
    ],
)
def test_every_flag_is_checked_when_the_run_starts(flags, name):
    with pytest.raises(ValueError, match=name):
        sysu_config_from_argv(["--demo", *flags])


def test_help_describes_every_flag_with_its_default(capsys):
    from sdcl_toolkit.engine.flag_help import FLAG_HELP

    assert set(FLAG_HELP) == {f.name for f in dataclasses.fields(TrainConfig)}
    with pytest.raises(SystemExit):
        sysu_config_from_argv(["--help"], description="train")
    text = " ".join(capsys.readouterr().out.split())
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        assert f"{flag} " in text, flag
    assert text.count("(default:") == len(FLAG_HELP)
    assert "--demo" in text


def test_checkpoint_grid_and_stem_reach_the_model(tmp_path):
    import torch

    from sdcl_toolkit.engine import build_model

    source = build_model(TrainConfig.demo(stem="linear"))  # tiny: 64x32, 8x4 patches
    assert source.vit.config.stem == "linear"
    path = tmp_path / "vit.pth"
    torch.save(
        {k[len("vit.") :]: v for k, v in source.state_dict().items() if k.startswith("vit.")}, path
    )
    bigger = TrainConfig.demo(stem="linear", height=96, pretrained=str(path), checkpoint_grid="8x4")
    model = build_model(bigger)
    assert model.vit.pos_embed.shape[1] == 1 + 12 * 4
    with pytest.raises(Exception, match="checkpoint_grid"):
        build_model(dataclasses.replace(bigger, checkpoint_grid="6x4"))
