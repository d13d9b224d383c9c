"""Shopify Admin API settings: each bad value stops the start with a message naming it, and the
access token never appears in a message or a repr."""

from __future__ import annotations

import pytest

from app.channels.shopify_api import ShopifyAdmin, ShopifyApiSettings, shopify_api_settings_from_env
from app.errors import ConfigError

TOKEN = "shpat_0123456789abcdef0123456789abcdef"
GOOD = {"SHOPIFY_ACCESS_TOKEN": TOKEN, "SHOPIFY_SHOP_DOMAIN": "garden-goods.myshopify.com"}


def test_no_token_means_no_api_client() -> None:
    assert shopify_api_settings_from_env({}) is None
    assert shopify_api_settings_from_env({"SHOPIFY_SHOP_DOMAIN": "garden-goods.myshopify.com",
                                          "SHOPIFY_ACCESS_TOKEN": "  "}) is None


def test_defaults() -> None:
    settings = shopify_api_settings_from_env(GOOD)
    assert settings == ShopifyApiSettings(shop_domain="garden-goods.myshopify.com",
                                          access_token=TOKEN, api_version="2026-10",
                                          base_url=None, notify_customer=True)
    assert settings.api_base_url == "https://garden-goods.myshopify.com/admin/api/2026-10"
    assert TOKEN not in repr(settings)


def test_everything_set() -> None:
    settings = shopify_api_settings_from_env({
        **GOOD,
        "SHOPIFY_SHOP_DOMAIN": " Garden-Goods.myshopify.com ",
        "SHOPIFY_API_VERSION": "2026-07",
        "SHOPIFY_API_BASE_URL": "https://shopify-proxy.internal.example/admin/api/2026-07/",
        "SHOPIFY_NOTIFY_CUSTOMER": "false",
    })
    assert settings is not None
    assert settings.shop_domain == "garden-goods.myshopify.com"
    assert settings.api_version == "2026-07"
    assert settings.api_base_url == "https://shopify-proxy.internal.example/admin/api/2026-07"
    assert settings.notify_customer is False
    admin = ShopifyAdmin.from_settings(settings)
    assert admin.base_url == settings.api_base_url
    assert admin.notify_customer is False


def test_the_stock_location_is_kept_as_a_gid() -> None:
    for raw in ("24826418", " gid://shopify/Location/24826418 "):
        settings = shopify_api_settings_from_env({**GOOD, "SHOPIFY_LOCATION_ID": raw})
        assert settings is not None
        assert settings.location_id == "gid://shopify/Location/24826418"
    unset = shopify_api_settings_from_env(GOOD)
    assert unset is not None and unset.location_id is None


def test_a_local_stand_in_may_use_http_on_loopback() -> None:
    for url in ("http://127.0.0.1:8089/admin/api/2026-10", "http://localhost:8089/x",
                "http://[::1]:8089/admin/api/2026-10"):
        settings = shopify_api_settings_from_env({**GOOD, "SHOPIFY_API_BASE_URL": url,
                                                  "SHOPIFY_SHOP_DOMAIN": "dev-shop.local"})
        assert settings is not None and settings.base_url == url


@pytest.mark.parametrize(
    ("env", "name", "reason"),
    [
        ({"SHOPIFY_SHOP_DOMAIN": ""}, "SHOPIFY_SHOP_DOMAIN", "missing"),
        ({"SHOPIFY_SHOP_DOMAIN": "garden-goods.com"}, "SHOPIFY_SHOP_DOMAIN", "myshopify.com"),
        ({"SHOPIFY_SHOP_DOMAIN": "https://garden-goods.myshopify.com"}, "SHOPIFY_SHOP_DOMAIN",
         "without https://"),
        ({"SHOPIFY_SHOP_DOMAIN": "garden-goods.myshopify.com/admin"}, "SHOPIFY_SHOP_DOMAIN",
         "bare domain"),
        ({"SHOPIFY_SHOP_DOMAIN": "shop_under.local",
          "SHOPIFY_API_BASE_URL": "http://127.0.0.1:8089/admin/api/2026-10"},
         "SHOPIFY_SHOP_DOMAIN", "not a domain name"),
        ({"SHOPIFY_API_VERSION": "2026-10-01"}, "SHOPIFY_API_VERSION", "YYYY-MM"),
        ({"SHOPIFY_API_VERSION": "latest"}, "SHOPIFY_API_VERSION", "YYYY-MM"),
        ({"SHOPIFY_API_VERSION": "2026-11"}, "SHOPIFY_API_VERSION", "01, 04, 07 or 10"),
        ({"SHOPIFY_API_BASE_URL": "ftp://proxy.example/admin"}, "SHOPIFY_API_BASE_URL",
         "http(s) URL"),
        ({"SHOPIFY_API_BASE_URL": "garden-goods.myshopify.com/admin/api/2026-10"},
         "SHOPIFY_API_BASE_URL", "http(s) URL"),
        ({"SHOPIFY_API_BASE_URL": "http://proxy.example/admin/api/2026-10"},
         "SHOPIFY_API_BASE_URL", "loopback"),
        ({"SHOPIFY_API_BASE_URL": "https://proxy.example/admin/api/2026-10?x=1"},
         "SHOPIFY_API_BASE_URL", "query string"),
        ({"SHOPIFY_API_BASE_URL": "https://proxy.example:99999/admin"},
         "SHOPIFY_API_BASE_URL", "port"),
        ({"SHOPIFY_NOTIFY_CUSTOMER": "sometimes"}, "SHOPIFY_NOTIFY_CUSTOMER", "true or false"),
        ({"SHOPIFY_ACCESS_TOKEN": "shpat_0123 456789abcdef"}, "SHOPIFY_ACCESS_TOKEN", "spaces"),
        ({"SHOPIFY_LOCATION_ID": "Warehouse"}, "SHOPIFY_LOCATION_ID", "not a Shopify location"),
        ({"SHOPIFY_LOCATION_ID": "gid://shopify/InventoryItem/43729076"}, "SHOPIFY_LOCATION_ID",
         "gid://shopify/Location/"),
        ({"SHOPIFY_LOCATION_ID": "-5"}, "SHOPIFY_LOCATION_ID", "location's admin URL"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], name: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        shopify_api_settings_from_env({**GOOD, **env})
    assert caught.value.name == name
    assert reason in caught.value.reason
    assert TOKEN not in str(caught.value)


def test_credentials_in_the_base_url_are_refused_without_repeating_them() -> None:
    with pytest.raises(ConfigError) as caught:
        shopify_api_settings_from_env({
            **GOOD, "SHOPIFY_API_BASE_URL": "https://user:hunter2@proxy.example/admin/api/2026-10"})
    assert caught.value.name == "SHOPIFY_API_BASE_URL"
    assert "hunter2" not in str(caught.value)


def test_bad_values_are_refused_even_without_a_token() -> None:
    # A typo should show at start, not on the day the token is added.
    with pytest.raises(ConfigError) as caught:
        shopify_api_settings_from_env({"SHOPIFY_API_VERSION": "2026-13"})
    assert caught.value.name == "SHOPIFY_API_VERSION"
